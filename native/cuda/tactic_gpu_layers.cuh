// Tactic in the CUDA backend: per global layer, the clusters of the cached keys kept on
// the GPU as pages (tactic_gpu.cuh), built by K-means on the GPU in blocks, as the CPU
// does (docs/TACTIC.md "Clustering in blocks"): at the first Tactic decode step the
// range [n_sink, n - n_recent) is cut into blocks of max(1024, 4 x block_size) tokens;
// afterwards every block_size tokens that leave the recent window are clustered as one
// more block and appended. Clustering runs before a step's graph is launched (it is
// not part of the graph); the step itself (tactic_step_dev) is captured in it.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "tactic_gpu.cuh"

namespace tactic {
namespace cuda {

struct TacticGpuParams {
    int n_sink = 4, n_recent = 64, cluster_size = 16, block_size = 256;
    int min_ctx = 0;            // Tactic from this many cached tokens on (0: always)
    float force_fraction = 0.f, p = 0.9f;
    uint64_t seed = 0;
};

class TacticGpu {
public:
    // k_cache/v_cache: the backend's caches [layer][n_head_kv][n_ctx][D], layer stride kv_layer.
    TacticGpu(const TacticGpuParams &prm, const std::vector<uint8_t> &is_global, int n_head, int n_head_kv, int D,
              int n_ctx, const __half *k_cache, const __half *v_cache, size_t kv_layer);
    ~TacticGpu();
    TacticGpu(const TacticGpu &) = delete;
    TacticGpu &operator=(const TacticGpu &) = delete;

    // Device bytes the constructor allocates.
    static uint64_t bytes(const TacticGpuParams &prm, int n_global, int n_head, int n_head_kv, int D, int n_ctx);

    // Before a decode step over n_tokens cached tokens (the new one included): clusters
    // the blocks that are due (enqueued on s, then waited for). True when this step
    // attends through Tactic.
    bool prepare(int n_tokens, cudaStream_t s);
    // Enqueues the step of global layer il (capturable): out = attention of q.
    void step(int il, const float *q, const int32_t *d_pos, float *out, cudaStream_t s) const;
    // The cache keeps n_keep tokens: clusters may cover only [.., n_keep - n_recent).
    void truncate(int n_keep);
    // Seconds spent clustering so far.
    double clustering_seconds() const { return t_cluster_; }
    void reset_timings() { t_cluster_ = 0; }

private:
    struct Layer {
        bool global = false;
        __half *ks = nullptr, *vs = nullptr, *cent = nullptr, *vmean = nullptr;
        int32_t *pos_map = nullptr, *coff = nullptr, *ncl = nullptr, *range = nullptr;
        TacticLayerDev dev;
        int begin = 0, end = 0, n_clusters = 0;     // host mirror (equal for every KV head)
        std::vector<int> block_end, block_clusters;  // per block: its end token, clusters after it
    };
    void *alloc(size_t bytes);
    void cluster_range(int from, int to, bool first, cudaStream_t s);  // every global layer
    void upload_sizes(Layer &L, cudaStream_t s);

    TacticGpuParams prm_;
    int H_, Hkv_, D_, n_ctx_, cmax_;
    std::vector<Layer> layers_;
    std::vector<void *> allocs_;
    TacticStepBufs bufs_;
    KmeansJob *d_jobs_ = nullptr;
    int jobs_cap_ = 0;
    std::vector<KmeansJob> jobs_;
    int32_t *h_sizes_ = nullptr;  // pinned: per layer n_clusters[Hkv] + range[2]
    double t_cluster_ = 0;
};

}  // namespace cuda
}  // namespace tactic
