// Tactic's decode step for one global layer on the GPU (docs/TACTIC.md, "On the GPU"):
// every piece reads its sizes from device memory, so the whole step is enqueued on a
// stream with no host round trip and can be captured in a CUDA graph.
//
// Layout of a layer's clusters ("pages"): per KV head, the clustered range of K and V
// [c_begin, c_end) is copied in cluster order (ks, vs: [n_head_kv][cap][D]); cluster c
// of KV head g is rows [coff[g][c], coff[g][c+1]) of that copy, pos_map[g][row] its
// tokens' positions; cent holds one f16 centroid per cluster. Tokens outside the
// range (sinks before it, recent and new tokens after it) are attended exactly from
// the cache itself.
//
// The step: A. centroid scores q . c for every query head; B. per query head, the
// clusters in decreasing score order until they hold ceil(f n) tokens (the forced
// fraction f), or until their centroid mass reaches 1 - (1 - P) / 4 of the total (P);
// C. per KV head the union of its query heads' clusters, expanded to a
// row list (the always-attended tokens first), built by B's last block of the KV group; D.
// sparse attention over the lists, the total work cut into equal pieces whatever each KV
// head's share; E. merge per head (by default inside D: its last block per KV head;
// options().tactic_fused). With options().tactic_group_budget a forced fraction is the KV
// group's budget: one cut per KV head (B and C in one block each). options().tactic_mma:
// D on tensor cores (head_dim <= 128).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace tactic {
namespace cuda {

struct TacticLayerDev {
    const __half *k_cache = nullptr, *v_cache = nullptr;  // [n_head_kv][n_ctx][D]
    const __half *ks = nullptr, *vs = nullptr;            // [n_head_kv][cap][D], cluster order
    const __half *cent = nullptr;                         // [n_head_kv][cmax][D]
    const __half *vmean = nullptr;                        // [n_head_kv][cmax][D]: each cluster's mean value row
                                                          // (options().tactic_tail; null: no estimate)
    const int32_t *coff = nullptr;                        // [n_head_kv][cmax + 1], rows of ks
    const int32_t *n_clusters = nullptr;                  // device [n_head_kv]
    const int32_t *range = nullptr;                       // device [2]: c_begin, c_end
    int n_head = 0, n_head_kv = 0, head_dim = 0, n_ctx = 0, cap = 0, cmax = 0;
};

// Scratch of one step (shared by all layers: the step of a layer ends before the next).
struct TacticStepBufs {
    float *cscore = nullptr;     // [n_head][cmax]
    uint8_t *hsel = nullptr;     // [n_head_kv][cmax][group]: cluster chosen by query head h0 + j of the group
    int32_t *list = nullptr;     // [n_head_kv][n_ctx]: row >= 0 of ks/vs, or -1 - position in the cache
    int32_t *count = nullptr;    // [n_head_kv]: entries of list
    float *part_acc = nullptr;   // [n_blocks][n_head][D]
    float *part_ml = nullptr;    // [n_blocks][n_head][2]
    int32_t *done = nullptr;     // [n_head_kv]: blocks done with a KV head (selection, then attention; zero between)
    int32_t *sel_ws = nullptr;   // tactic_select_ws_bytes: the spread selection's counters and histograms (zeroed
                                 // once; every step leaves them zero)
    float *spart = nullptr;      // tactic_score_parts_bytes: the scoring blocks' partials (tactic_select 3)
    float *tail_acc = nullptr;   // tactic_tail_bufs: the output estimate's partials [chunks][n_head][D],
    float *tail_ml = nullptr;    // [chunks][n_head][2],
    float *lse = nullptr;        // and the attention's log-sum-exp per head [n_head] (null: no estimate)
    int32_t *rows = nullptr;     // [n_head_kv][n_ctx]: the fused step's chosen rows, each slice's in its own region
                                 // (tactic_select 9, 10)
    int n_blocks = 0;            // attention blocks (the work is cut into at most this many pieces)
};

struct TacticStepArgs {
    const float *q = nullptr;        // [n_head][D], f32
    const int32_t *d_pos = nullptr;  // device: position of the new token (n = pos + 1 tokens cached)
    float scale = 1.f;               // softmax scale applied to q . k
    float force_fraction = 0.1f;     // (0, 1]; 0: the mass target p decides
    float p = 0.9f;                  // target share of the mass (force_fraction 0)
    float *out = nullptr;            // [n_head][D]
};

// Blocks of the attention kernel that fill the GPU once.
int tactic_attn_blocks(int head_dim, int group);
// Clusters per KV head the selection handles (cmax at most this: 16,384, i.e. about 256K
// tokens in clusters of 16); and the one-time kernel setup (call before capturing).
int tactic_max_clusters();
void tactic_init_kernels();
// Bytes of TacticStepBufs::sel_ws (allocate zeroed).
size_t tactic_select_ws_bytes(int n_head, int n_head_kv);
size_t tactic_score_parts_bytes(int n_head, int cmax);

// The stages, each enqueued on `stream`; tactic_step_dev runs all of them.
void tactic_score_dev(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s);
void tactic_select_dev(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s);
// (tactic_union_dev enqueues nothing: B's kernels build the lists.)
void tactic_union_dev(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s);
void tactic_attend_dev(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s);
void tactic_merge_dev(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s);
void tactic_step_dev(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s);

// The output estimate of the unattended clusters (tactic_tail.cu; options().tactic_tail,
// mass target only): tactic_tail_dev between the selection and the attention,
// tactic_tail_merge_dev after it. The scratch: tactic_tail_bytes, carved by tactic_tail_bufs.
bool tactic_tail_on(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b);
size_t tactic_tail_bytes(int n_head, int head_dim);
void tactic_tail_bufs(float *base, int n_head, int head_dim, TacticStepBufs &b);
void tactic_tail_dev(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s);
void tactic_tail_merge_dev(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s);
// vmean[g][c] = the mean of rows [coff[g][c], coff[g][c + 1]) of vs[g] ([n_head_kv][cap][D]),
// for clusters c_from <= c < c_to of every KV head g (zeros for an empty cluster).
void tactic_value_means_dev(const __half *vs, const int32_t *coff, int n_head_kv, int cap, int cmax, int D, int c_from,
                            int c_to, __half *vmean, cudaStream_t s);

// Copies the clustered range into cluster order: ks[g][o] = k_cache[g][order[g][o]],
// the same for V, for o < len (order: [n_head_kv][cap] positions).
void tactic_pack_dev(const __half *k_cache, const __half *v_cache, int n_head_kv, int n_ctx, int D,
                     const int32_t *order, int cap, int len, __half *ks, __half *vs, cudaStream_t s);

}  // namespace cuda
}  // namespace tactic

namespace tactic {
namespace cuda {

// One K-means job: the keys of tokens [tok_begin, tok_begin + len) of one KV head's cache,
// clustered into C slots on their own (Lloyd, at most 10 iterations, squared Euclidean
// distance; initial centroids: one key drawn from each of C equal strata of the block,
// with `seed`). Writes the block's tokens in cluster order to pos_map[row0 ..], its
// K and V rows in that order to ks/vs[row0 ..], the C slots' first rows to coff[0 .. C)
// (an empty cluster is a slot of no rows) and their centroids (f16) to cent[0 .. C).
struct KmeansJob {
    const __half *k, *v;  // this KV head's cache rows [n_ctx][D]
    __half *ks, *vs;      // this KV head's cluster-order copy [cap][D]
    int32_t *pos_map;     // [cap]
    int32_t *coff;        // this job's first slot in the KV head's offsets
    __half *cent;         // this job's first slot in the KV head's centroids
    int tok_begin, len, row0, C;
    uint32_t seed;
};
constexpr int kKmeansMaxC = 128;
constexpr int kKmeansMaxIter = 10;
// Runs every job (one CUDA block each): all layers and KV heads at once; max_C and
// max_len bound the jobs' slots and tokens (they size the shared memory).
void kmeans_jobs_dev(const KmeansJob *d_jobs, int n_jobs, int head_dim, int max_C, int max_len, cudaStream_t s);

}  // namespace cuda
}  // namespace tactic
