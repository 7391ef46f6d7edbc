// Host-side helpers of the CUDA backend: checked calls, device buffers, the bench
// timer; and the warp reductions the kernels share.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "common.h"

namespace tactic {
namespace cuda {

// Every CUDA call is checked; a failure becomes a tactic::Error.
inline void check(cudaError_t e, const char *what) {
    if (e == cudaSuccess) return;
    cudaGetLastError();  // clear a sticky-free error so the next call starts clean
    const tactic_status s = e == cudaErrorMemoryAllocation ? TACTIC_ERR_OUT_OF_MEMORY : TACTIC_ERR_INTERNAL;
    fail(s, std::string("CUDA: ") + what + ": " + cudaGetErrorString(e));
}
#define TACTIC_CU(call) ::tactic::cuda::check((call), #call)
// After a launch: the launch error, then (synchronously) any fault of the kernel.
inline void check_launch(const char *kernel) {
    check(cudaGetLastError(), kernel);
    check(cudaDeviceSynchronize(), kernel);
}

// Selects GPU 0, or throws UNSUPPORTED when there is none.
void require_device();

// A device allocation freed on scope exit.
class DevBuf {
public:
    explicit DevBuf(size_t bytes) : n_(bytes) {
        if (bytes) TACTIC_CU(cudaMalloc(&p_, bytes));
    }
    ~DevBuf() {
        if (p_) cudaFree(p_);
    }
    DevBuf(const DevBuf &) = delete;
    DevBuf &operator=(const DevBuf &) = delete;
    DevBuf(DevBuf &&o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; }
    template <class T>
    T *as() const { return static_cast<T *>(p_); }
    size_t size() const { return n_; }
    void upload(const void *src, size_t bytes) {
        if (bytes) TACTIC_CU(cudaMemcpy(p_, src, bytes, cudaMemcpyHostToDevice));
    }
    // All bits set (NaN for floats), so an element no kernel wrote shows in a test.
    void poison() {
        if (n_) TACTIC_CU(cudaMemset(p_, 0xff, n_));
    }
    void download(void *dst, size_t bytes) const {
        if (bytes) TACTIC_CU(cudaMemcpy(dst, p_, bytes, cudaMemcpyDeviceToHost));
    }

private:
    void *p_ = nullptr;
    size_t n_ = 0;
};

// Options set through tactic_cuda_set_option.
struct Options {
    int bench_iters = 0;   // > 0: time kernels
    int matvec_rows = 0;   // rows per warp (0: default)
    int matvec_version = 0;  // 1 or 2 (0: default)
    int attn_splits = 0;   // decode attention's split count, forced (benchmarks); 0: automatic (one wave,
                           // balanced: attention_decode_mma.cu, decode_attention_mma_splits)
    int attn_prefetch = 0;  // 1: L2 prefetch of the next rows (measured no faster on an H200)
    int bench_graph = 0;    // 1: timed decode attention and 8-bit matvec launches replay from a CUDA graph
    int attn_kernel = 32;   // decode attention: 0 the FMA split kernel, 1 the tensor-core one (sm_80+;
                            // 0 below), 2 that one with the splits merged by each head's last block;
                            // 3-11, 19, 20, 29-31 its variants (attention_decode_mma.cu, kVariants;
                            // attn_kernel_valid): 8 = TMA bulk row copies on sm_90 + a merge kernel
                            // with loads in flight; 19, 20 and 29-31 the K/V-slot kernel (20: faster
                            // than 8 at 16K-64K in three sittings, docs/results/gpu_session13.md; 30:
                            // its tail claimed, faster than 20 from 32K in four sittings and slower
                            // at 16K, gpu_session15.md); 32 = the default: 20 for caches (decode: the
                            // bucket) below kAttnLongKv tokens, 30 from there. Head dims other than 128
                            // and sm_80/89 run kernel 8's code
    int matvec_q8 = 1;      // 0: decode multiplies quantized types by f32 activations (no 8-bit quantization)
    int prefill_mma = 2;    // prefill attention: 0 FMA, 1 WMMA, 2 mma.sync FlashAttention-2 style (sm_80+)
    int prefill_rows = 0;   // mma.sync prefill: query rows a block, 64 or 128 (0: default, 64)
    int graphs = 1;         // 0: decode steps run kernel by kernel instead of replaying a CUDA graph
    int tactic_copies = 0;  // Tactic step benchmark: layer copies rotated (0: enough to leave the L2)
    int tactic_blocks = 0;  // Tactic sparse attention blocks (0: one full wave)
    int matvec_q8_kernel = 5;  // 8-bit-activation matvec: 5 (two rows a warp on one activation load; Q4_K /
                               // Q5_K weights straight into registers), 4 (rows pipelined per warp), 3
    int matvec_wait = 1;       // v5 Q4_K/Q5_K: 1 the first chunk of weights with coherent loads, which ptxas
                               // keeps above pdl_wait; 0 ld.global.nc, which it schedules after the wait
                               // (matvec_q8.cu; 1 measured faster on the H200: docs/PERFORMANCE.md)
    int decode_fuse = 2;       // 1: decode fuses norm + quantization, residual adds, gate/up + activation;
                               // 2: also wq/wk/wv of one type in one launch (measured faster on the H200)
    int tactic_fused = 1;   // 1: Tactic's attention streams rows through cp.async and merges in its last
                            // block per KV head; 0: the earlier register-tile kernel + a merge kernel
    int pdl = 1;            // 1: kernels following pdl.cuh's protocol launch with programmatic dependent launch
                            // (compute capability 9.0+; measured faster on the H200: docs/PERFORMANCE.md)
    int merge_q8 = 1;       // 1 (with decode_fuse): decode attention's wide merge also quantizes its output
                            // for the wo matvec (one kernel fewer a layer; the same bytes; H200: decode
                            // +1.2% at depth 16, +1% at 32K on the 8B shape; docs/results/gpu_session15.md)
    int norm_fuse = 1;      // 1 (with decode_fuse): QK-norm inside RoPE + KV store; a post-norm, its residual
                            // add and the next pre-norm + quantization in one kernel (Gemma)
    int tactic_mma = 1;     // 1: Tactic's streaming attention on tensor cores (head_dim <= 128); 0: FMA
    int tactic_group_budget = 1;  // 1: a forced fraction is the KV group's budget (one cut per KV head, the
                                  // union holds ceil(f n) tokens: f of the cache is read), not each query head's
    int tactic_select = 9;  // Tactic's selection: 1 one block per query head (group budget: per KV head);
                            // 3 spread over many blocks a KV head, from the scores' partials: a radix cut
                            // through global histograms, two levels + candidates; 4 that with one level;
                            // 5 that scoring the centroids itself (head_dim 128, forced fractions only);
                            // 9 selection 4 inside the sparse attention kernel (one kernel after the
                            // scores), 10 that scoring too (one kernel a step): head_dim 128, the group
                            // budget at a forced fraction; elsewhere 4. 9 measured fastest (H200, 128K
                            // 10%: 46.5 vs 55.5 us a layer; docs/results/ts_s10.md)
    int tactic_score = 5;   // Tactic's centroid scores: 2 every row requested before
                            // pdl_wait, q in shared memory (one wave); 3 that kernel, rows after pdl_wait
                            // (3/3 measured fastest on the H200: docs/results/gpu_session7.md); 4 the
                            // kernel of 3 with the dot products on tensor cores (q in f16 hi + lo): 4
                            // measured fastest (H200, 128K: 7.9 vs 17.6 us; docs/results/gpu_sa_s8.md);
                            // 5 the kernel of 4 as one resident wave, each block's first chunk requested
                            // before pdl_wait (the same scores): 5 measured fastest (H200, 128K 10%: step
                            // 43.6 vs 46.3 us; docs/results/sc_s11.md, gpu_session12.md)
    int tactic_score_blocks = 0;  // scores 5's grid: at most this many blocks (0: one resident wave)
    int tactic_attend = 2;  // Tactic's tensor-core streaming attention: 1 four warps a block, the merge tail
                            // one L2 round trip per 8 blocks; 2 eight warps a block (head_dim 128) and the
                            // parallel merge tail; 3 four warps and the parallel tail; 4 that with TMA
                            // bulk copies of the rows (sm_90; below it 3). 2-4 at head_dim 128 only;
                            // 2 measured fastest (H200, 128K 10%: 26.7 vs 29.2 us; gpu_sa_s8.md);
                            // 5, 6: 2, 3 with pieces that never span two KV heads (not yet measured)
    int tactic_stream = 8;  // the fused step's (tactic_select 9, 10) streaming after the counts are known: 8 the
                            // first stages' copies issued before q's fragments are built, 0 after (as before).
                            // 8 measured faster on the two-barrier cut (H200, session 13 batch 1: step 40.8 vs 41.7 us at
                            // 128K 10%, 27.4 vs 28.2 at 2.5%, 25.1 vs 25.9 at 32K 10%; docs/results/gpu_session13.md)
    int tactic_cand_div = 16;  // under the mass target each query head's candidate clusters hold 1 - (1 - P) / this
                               // of the centroid mass. The CPU's bounded selector starts at 4 and grows the
                               // candidates where its tail bound says so; the GPU has no growth rounds, so it
                               // starts wider: 16 brought the real Gemma's KL to the CPU's (16K 0.00407 vs 4's
                               // 0.00435, paired -0.00028 +- 0.00015) at the same tok/s (docs/results/gpu_session11.md)
    int tactic_tail = 0;    // 1: under the mass target, Tactic on the GPU adds the output estimate of the
                            // clusters a KV group does not attend (tactic_tail.cu), as the CPU's bounded selector.
                            // Off: on the real Gemma it did not lower the KL measurably (16K 0.00447 on against
                            // 0.00432-0.00450 off) and costs 17-20 us a layer (docs/results/gpu_session10.md)
};
Options &options();
// The attn_kernel values set_option accepts: 0-11, 19, 20, 29-32. The gaps (12-18: a
// block-tile kernel; 21-28: kernel 8 with a claimed tail, a swapped grid or L2 prefetches)
// are variants removed after they were measured slower or no faster
// (docs/results/at_s13.md); the numbers are kept as they appear in the measurement logs.
inline bool attn_kernel_valid(int64_t k) { return (k >= 0 && k <= 11) || k == 19 || k == 20 || (k >= 29 && k <= 32); }
// attn_kernel 32: from this many tokens (the decode step's bucket) kernel 30, below it 20.
constexpr int64_t kAttnLongKv = 32768;
void set_last_ms(double ms);

// How many copies of an input of `bytes` a timed run rotates among so that repeats
// stream from device memory, not from the 50 MB L2.
inline int bench_copies(size_t bytes) {
    if (options().bench_iters <= 0 || bytes == 0) return 1;
    const size_t want = size_t(256) << 20;
    return int(std::min<size_t>(64, std::max<size_t>(1, (want + bytes - 1) / bytes)));
}

// Times launch(copy) when benchmarking: five trials of bench_iters launches each
// (after a warm-up), the median per-launch time kept for tactic_cuda_last_ms.
template <class F>
void bench(F &&launch, int n_copies) {
    const int iters = options().bench_iters;
    if (iters <= 0) return;
    for (int i = 0; i < n_copies; i++) launch(i);  // warm-up
    check_launch("bench warm-up");
    cudaEvent_t e0, e1;
    TACTIC_CU(cudaEventCreate(&e0));
    TACTIC_CU(cudaEventCreate(&e1));
    std::vector<float> per_launch;
    for (int trial = 0; trial < 5; trial++) {
        TACTIC_CU(cudaEventRecord(e0));
        for (int i = 0; i < iters; i++) launch(i % n_copies);
        TACTIC_CU(cudaEventRecord(e1));
        TACTIC_CU(cudaEventSynchronize(e1));
        float ms = 0;
        TACTIC_CU(cudaEventElapsedTime(&ms, e0, e1));
        per_launch.push_back(ms / iters);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    check_launch("bench");
    std::sort(per_launch.begin(), per_launch.end());
    set_last_ms(per_launch[per_launch.size() / 2]);
}

// bench() with the launches replayed from a CUDA graph, as the decode step replays its
// kernels (option bench_graph; PDL launches become programmatic edges): the graph holds
// launch(i % n_copies, stream) for i < max(n_copies, min_launches), median of 5 trials of
// about bench_iters launches, for tactic_cuda_last_ms.
template <class F>
void bench_in_graph(F &&launch, int n_copies, int min_launches = 1) {
    const int iters = options().bench_iters;
    if (iters <= 0) return;
    const int n = std::max(n_copies, min_launches);
    cudaStream_t s = nullptr;
    TACTIC_CU(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaGraph_t g = nullptr;
    cudaGraphExec_t ge = nullptr;
    TACTIC_CU(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < n; i++) launch(i % n_copies, s);
    TACTIC_CU(cudaStreamEndCapture(s, &g));
    TACTIC_CU(cudaGraphInstantiate(&ge, g, 0));
    const int reps = std::max(1, iters / n);
    cudaEvent_t e0, e1;
    TACTIC_CU(cudaEventCreate(&e0));
    TACTIC_CU(cudaEventCreate(&e1));
    TACTIC_CU(cudaGraphLaunch(ge, s));  // warm-up
    std::vector<float> per_launch;
    for (int trial = 0; trial < 5; trial++) {
        TACTIC_CU(cudaEventRecord(e0, s));
        for (int r = 0; r < reps; r++) TACTIC_CU(cudaGraphLaunch(ge, s));
        TACTIC_CU(cudaEventRecord(e1, s));
        TACTIC_CU(cudaEventSynchronize(e1));
        float ms = 0;
        TACTIC_CU(cudaEventElapsedTime(&ms, e0, e1));
        per_launch.push_back(ms / float(reps * n));
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaGraphExecDestroy(ge);
    cudaGraphDestroy(g);
    cudaStreamDestroy(s);
    check_launch("bench in a graph");
    std::sort(per_launch.begin(), per_launch.end());
    set_last_ms(per_launch[per_launch.size() / 2]);
}

// Multiprocessors of the current device (for sizing grids).
int sm_count();

#ifdef __CUDACC__
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
#endif

}  // namespace cuda
}  // namespace tactic
