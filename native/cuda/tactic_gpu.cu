// Tactic's decode step for one global layer on the GPU (tactic_gpu.cuh says what each
// stage does; docs/TACTIC.md, "On the GPU", why). Sizes that change from step to step
// (tokens cached, clusters per KV head, selected rows) live in device memory, so the
// step is a fixed sequence of kernels: capturable in a CUDA graph. This file: D + E, the
// sparse attention and its merge, the step, and the test/bench harness; A in
// tactic_score.cu, B + C in tactic_select.cu.
#include <cub/block/block_reduce.cuh>

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "bulk_copy.cuh"
#include "cuda_backend.h"
#include "cuda_ops.cuh"
#include "cuda_util.cuh"
#include "device_limits.cuh"
#include "pdl.cuh"
#include "step_trace.cuh"
#include "tactic_cut.cuh"
#include "tactic_fused_cut.cuh"
#include "tactic_gpu.cuh"
#include "tactic_gpu.h"
#include "tactic_kernels.cuh"

namespace tactic {
namespace cuda {

namespace {

constexpr int kWarps = 4;        // attention block: 4 warps
constexpr int kTile = 32;        // list positions per warp and round
constexpr int kMinPerBlock = 64;  // attention: fewest list entries worth a block
constexpr int kInFlight = 8;      // attention: K or V rows loaded per lane before use

// The attention blocks that do work: enough that each has kMinPerBlock entries.
__device__ __forceinline__ int active_blocks(int64_t tot, int nb) {
    const int64_t want = (tot + kMinPerBlock - 1) / kMinPerBlock;
    return int(want < 1 ? 1 : want > nb ? nb : want);
}

// D. Sparse attention. The lists of all KV heads, end to end, are cut into equal pieces,
// one a block: a KV head with a long list gets more blocks, so unequal budgets do not
// leave multiprocessors idle. A block whose piece spans several KV heads writes one
// partial (max, sum, acc) per head of each; the rows of heads it did not touch say empty.
// Inside a piece: tiles of 32 entries a warp; each K/V row read by D/8 lanes, 16 bytes
// each; scores for every query head of the group, online softmax, values.
template <int D, int G>
__global__ void __launch_bounds__(kWarps * 32) attend_kernel(TacticLayerDev L, const float *__restrict__ q,
                                                             float scale, const int32_t *__restrict__ list,
                                                             const int32_t *__restrict__ count,
                                                             float *__restrict__ part_acc, float *__restrict__ part_ml,
                                                             int nb) {
    constexpr int LPT = D / 8, TPW = 32 / LPT, STEPS = kTile / TPW;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, slot = lane / LPT, dl = lane % LPT;
    const int H = L.n_head, Hkv = L.n_head_kv, group = H / Hkv;
    const int b = blockIdx.x;
    constexpr int kMaxKv = 64;
    __shared__ int s_cnt[kMaxKv];
    pdl_wait();
    pdl_trigger();
    for (int k = threadIdx.x; k < Hkv && k < kMaxKv; k += kWarps * 32) s_cnt[k] = count[k];
    __syncthreads();
    int64_t tot = 0;
    for (int k = 0; k < Hkv; k++) tot += k < kMaxKv ? s_cnt[k] : count[k];
    const int nbe = active_blocks(tot, nb);
    const int64_t r0 = b < nbe ? tot * b / nbe : tot, r1 = b < nbe ? tot * (b + 1) / nbe : tot;

    __shared__ float s_p[kWarps][G][kTile];
    __shared__ float s_acc[kWarps][G][D];
    __shared__ float s_m[kWarps][G], s_l[kWarps][G];

    int64_t start = 0;
    for (int kvh = 0; kvh < Hkv; kvh++) {
        const int cnt = kvh < kMaxKv ? s_cnt[kvh] : count[kvh];
        const int s0 = int(max(r0, start) - start), s1 = int(min(r1, start + cnt) - start);
        start += cnt;
        const int h0 = kvh * group;
        if (s0 >= s1) {  // block-uniform
            if (threadIdx.x < group) {
                part_ml[(int64_t(b) * H + h0 + threadIdx.x) * 2] = -INFINITY;
                part_ml[(int64_t(b) * H + h0 + threadIdx.x) * 2 + 1] = 0.f;
            }
            continue;
        }
        const int32_t *lst = list + int64_t(kvh) * L.n_ctx;
        const __half *Kc = L.k_cache + int64_t(kvh) * L.n_ctx * D + dl * 8;
        const __half *Vc = L.v_cache + int64_t(kvh) * L.n_ctx * D + dl * 8;
        const __half *Ks = L.ks + int64_t(kvh) * L.cap * D + dl * 8;
        const __half *Vs = L.vs + int64_t(kvh) * L.cap * D + dl * 8;
        float qr[G][8], acc[G][8], m[G], l[G];
#pragma unroll
        for (int h = 0; h < G; h++) {
            m[h] = -INFINITY;
            l[h] = 0.f;
#pragma unroll
            for (int i = 0; i < 8; i++) {
                qr[h][i] = h < group ? q[int64_t(h0 + h) * D + dl * 8 + i] * scale : 0.f;
                acc[h][i] = 0.f;
            }
        }
        // Lane t holds the list entry of tile slot t; the next tile's is fetched ahead.
        auto entry = [&](int t) { return t < s1 ? lst[t + min(lane, min(kTile, s1 - t) - 1)] : 0; };
        int my_code = entry(s0 + warp * kTile);
        for (int t0 = s0 + warp * kTile; t0 < s1; t0 += kWarps * kTile) {
            const int n_in = min(kTile, s1 - t0);
            const int next_code = entry(t0 + kWarps * kTile);
            // D <= 128: every K and V row of the tile requested at once (one memory round
            // trip for both); D = 256: K then V, kInFlight rows at a time.
            constexpr bool kAll = STEPS <= 16;
            constexpr int kVA = kAll ? STEPS : 1;
            uint4 vall[kVA];
            if constexpr (kAll) {
                uint4 kall[STEPS];
#pragma unroll
                for (int s = 0; s < STEPS; s++) {
                    const int code = __shfl_sync(0xffffffffu, my_code, s * TPW + slot);
                    const int64_t ko = code >= 0 ? int64_t(code) * D : int64_t(-1 - code) * D;
                    kall[s] = *reinterpret_cast<const uint4 *>((code >= 0 ? Ks : Kc) + ko);
                    vall[s] = *reinterpret_cast<const uint4 *>((code >= 0 ? Vs : Vc) + ko);
                }
#pragma unroll
                for (int s = 0; s < STEPS; s++) {
                    float kf[8];
                    h8_to_f(kall[s], kf);
                    const int t = s * TPW + slot;
#pragma unroll
                    for (int h = 0; h < G; h++) {
                        float d = 0.f;
#pragma unroll
                        for (int i = 0; i < 8; i++) d = fmaf(qr[h][i], kf[i], d);
#pragma unroll
                        for (int o = LPT / 2; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
                        if (dl == 0) s_p[warp][h][t] = t < n_in ? d : -INFINITY;
                    }
                }
            }
            // 1. scores
#pragma unroll
            for (int s0 = 0; s0 < (kAll ? 0 : STEPS); s0 += kInFlight) {
                uint4 kw[kInFlight];
#pragma unroll
                for (int s = 0; s < kInFlight; s++) {
                    if (s0 + s < STEPS) {
                        const int code = __shfl_sync(0xffffffffu, my_code, (s0 + s) * TPW + slot);
                        const __half *row = code >= 0 ? Ks + int64_t(code) * D : Kc + int64_t(-1 - code) * D;
                        kw[s] = *reinterpret_cast<const uint4 *>(row);
                    }
                }
#pragma unroll
                for (int s = 0; s < kInFlight; s++) {
                    if (s0 + s < STEPS) {
                        float kf[8];
                        h8_to_f(kw[s], kf);
                        const int t = (s0 + s) * TPW + slot;
#pragma unroll
                        for (int h = 0; h < G; h++) {
                            float d = 0.f;
#pragma unroll
                            for (int i = 0; i < 8; i++) d = fmaf(qr[h][i], kf[i], d);
#pragma unroll
                            for (int o = LPT / 2; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
                            if (dl == 0) s_p[warp][h][t] = t < n_in ? d : -INFINITY;
                        }
                    }
                }
            }
            __syncwarp();
            // 2. online softmax, lane = entry of the tile
#pragma unroll
            for (int h = 0; h < G; h++) {
                const float sv = s_p[warp][h][lane];
                const float m_new = fmaxf(m[h], warp_max(sv));
                const float alpha = expf(m[h] - m_new);
                const float p = expf(sv - m_new);
                l[h] = l[h] * alpha + warp_sum(p);
                m[h] = m_new;
                s_p[warp][h][lane] = p;
#pragma unroll
                for (int i = 0; i < 8; i++) acc[h][i] *= alpha;
            }
            __syncwarp();
            // 3. values
            if constexpr (kAll) {
#pragma unroll
                for (int s = 0; s < STEPS; s++) {
                    float vf[8];
                    h8_to_f(vall[s], vf);
                    const int t = s * TPW + slot;
#pragma unroll
                    for (int h = 0; h < G; h++) {
                        const float p = s_p[warp][h][t];
#pragma unroll
                        for (int i = 0; i < 8; i++) acc[h][i] = fmaf(p, vf[i], acc[h][i]);
                    }
                }
            }
#pragma unroll
            for (int s0 = 0; s0 < (kAll ? 0 : STEPS); s0 += kInFlight) {
                uint4 vw[kInFlight];
#pragma unroll
                for (int s = 0; s < kInFlight; s++) {
                    if (s0 + s < STEPS) {
                        const int code = __shfl_sync(0xffffffffu, my_code, (s0 + s) * TPW + slot);
                        const __half *row = code >= 0 ? Vs + int64_t(code) * D : Vc + int64_t(-1 - code) * D;
                        vw[s] = *reinterpret_cast<const uint4 *>(row);
                    }
                }
#pragma unroll
                for (int s = 0; s < kInFlight; s++) {
                    if (s0 + s < STEPS) {
                        float vf[8];
                        h8_to_f(vw[s], vf);
                        const int t = (s0 + s) * TPW + slot;
#pragma unroll
                        for (int h = 0; h < G; h++) {
                            const float p = s_p[warp][h][t];
#pragma unroll
                            for (int i = 0; i < 8; i++) acc[h][i] = fmaf(p, vf[i], acc[h][i]);
                        }
                    }
                }
            }
            __syncwarp();
            my_code = next_code;
        }
        // The token slots of a warp hold parts of the sum; then merge the warps.
#pragma unroll
        for (int h = 0; h < G; h++)
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int o = LPT; o < 32; o <<= 1) acc[h][i] += __shfl_xor_sync(0xffffffffu, acc[h][i], o);
        if (slot == 0) {
#pragma unroll
            for (int h = 0; h < G; h++)
#pragma unroll
                for (int i = 0; i < 8; i++) s_acc[warp][h][dl * 8 + i] = acc[h][i];
        }
        if (lane == 0) {
#pragma unroll
            for (int h = 0; h < G; h++) {
                s_m[warp][h] = m[h];
                s_l[warp][h] = l[h];
            }
        }
        __syncthreads();
        for (int e = threadIdx.x; e < group * D; e += kWarps * 32) {
            const int h = e / D, d = e % D;
            float M = -INFINITY;
#pragma unroll
            for (int w = 0; w < kWarps; w++) M = fmaxf(M, s_m[w][h]);
            float A = 0.f, S = 0.f;
            if (M != -INFINITY) {
#pragma unroll
                for (int w = 0; w < kWarps; w++) {
                    const float f = expf(s_m[w][h] - M);
                    A = fmaf(f, s_acc[w][h][d], A);
                    S = fmaf(f, s_l[w][h], S);
                }
            }
            const int64_t row = int64_t(b) * H + h0 + h;
            part_acc[row * D + d] = A;
            if (d == 0) {
                part_ml[row * 2] = M;
                part_ml[row * 2 + 1] = S;
            }
        }
        __syncthreads();  // s_acc and s_p are reused by the next KV head
    }
}

// ---- D'. The streaming attention kernel (options().tactic_fused, the default) ----------
// The same pieces as attend_kernel, but each warp streams its rows through shared memory:
// stages of R = 2048 / D rows (4 KB of K and 4 KB of V), copied with cp.async kStreamStages
// - 1 stages ahead of the one being used (the list codes one stage further still), so that
// every warp keeps its next rows' loads in flight while it computes. After its partials,
// the last block to finish a KV head (a counter per KV head) merges that head's partials
// into out: no merge kernel.
constexpr int kStreamWarps = 4;
constexpr int kStreamStages = 3;
constexpr int kNoRow = INT32_MIN;  // list code of a stage row past the piece's end

// Stage rows are padded by 8 halves (16 bytes) so that the 8 rows an ldmatrix of the
// tensor-core variant reads fall in distinct banks; the FMA variant uses the rows unpadded.
size_t stream_smem(int D, int W = kStreamWarps) {
    return size_t(W) * kStreamStages * 2 * (2048 / D) * (D + 8) * sizeof(__half);
}

// 16 bytes global -> shared, asynchronously where the GPU has cp.async (sm_80+); zeros
// when !valid.
__device__ __forceinline__ void copy16_async(__half *dst, const __half *src, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned d = unsigned(__cvta_generic_to_shared(dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0));
#else
    *reinterpret_cast<uint4 *>(dst) = valid ? *reinterpret_cast<const uint4 *>(src) : make_uint4(0, 0, 0, 0);
#endif
}
__device__ __forceinline__ void copy_commit_group() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int N>
__device__ __forceinline__ void copy_wait_group() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

// The list range [r0, r1) of block bb when the total work tot is cut into nbe pieces.
__device__ __forceinline__ int64_t piece_start(int64_t tot, int bb, int nbe) { return tot * bb / nbe; }

// The block whose piece holds row r (0 <= r < tot; pieces are never empty: nbe <= tot):
// the largest bb with piece_start(bb) <= r, i.e. tot bb < (r + 1) nbe. One division: a
// loop of piece_start calls over a KV head's blocks cost ~80 64-bit divisions a block,
// microseconds on the step's tail.
__device__ __forceinline__ int block_of_row(int64_t tot, int nbe, int64_t r) { return int(((r + 1) * nbe - 1) / tot); }

// E in parallel (tactic_attend 2 and 3): the last block of a KV head merges its blocks'
// partials bt0 .. bt1 - 1 without a chain of dependent loads. Per chunk of kWideChunk
// blocks: every (m, l) loaded at once into shared memory, each head's max by a warp,
// the blocks' weights e^(m_b - M) left in shared memory; then each thread's acc loads
// depend on nothing but their address (16 in flight), the running sums rescaled once a
// chunk. The sequential tail waits one L2 round trip per 8 blocks with the rescaling in
// between. s_w: shared scratch of 2 kWideChunk G floats (the stream buffers, free here).
constexpr int kWideChunk = 256;
template <int D, int G, int NT>
__device__ void merge_kv_head_wide(const float *__restrict__ part_acc, const float *__restrict__ part_ml, int H, int h0,
                                   int group, int bt0, int bt1, float *__restrict__ out, float *__restrict__ lse,
                                   float *s_w) {
    constexpr int D4 = D / 4, IPT = (G * D4 + NT - 1) / NT, NW = NT / 32;
    __shared__ float s_M[G], s_S[G], s_alpha[G];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float *s_wm = s_w, *s_wl = s_w + kWideChunk * G;
    if (threadIdx.x < G) {
        s_M[threadIdx.x] = -INFINITY;
        s_S[threadIdx.x] = 0.f;
    }
    float4 A[IPT];
#pragma unroll
    for (int k = 0; k < IPT; k++) A[k] = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int c0 = bt0; c0 < bt1; c0 += kWideChunk) {
        const int n = min(kWideChunk, bt1 - c0);
        for (int e = threadIdx.x; e < n * group; e += NT) {
            const int64_t row = int64_t(c0 + e / group) * H + h0 + e % group;
            s_wm[e] = __ldcg(part_ml + row * 2);
            s_wl[e] = __ldcg(part_ml + row * 2 + 1);
        }
        __syncthreads();  // (also: s_M, s_S set)
        for (int h = warp; h < group; h += NW) {
            float mx = -INFINITY;
            for (int i = lane; i < n; i += 32) mx = fmaxf(mx, s_wm[i * group + h]);
            mx = warp_max(mx);
            const float m_old = s_M[h], m_new = fmaxf(m_old, mx);
            float sl = 0.f;
            for (int i = lane; i < n; i += 32) {
                const float mb = s_wm[i * group + h];
                const float f = mb == -INFINITY ? 0.f : expf(mb - m_new);
                s_wm[i * group + h] = f;
                sl = fmaf(f, s_wl[i * group + h], sl);
            }
            sl = warp_sum(sl);
            __syncwarp();
            if (lane == 0) {
                const float alpha = m_old == -INFINITY ? 0.f : expf(m_old - m_new);
                s_alpha[h] = alpha;
                s_S[h] = fmaf(s_S[h], alpha, sl);
                s_M[h] = m_new;
            }
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < IPT; k++) {
            const int e = threadIdx.x + k * NT;
            if (e >= group * D4) break;
            const int h = e / D4, d4 = e % D4;
            const float al = s_alpha[h];
            float4 a = make_float4(A[k].x * al, A[k].y * al, A[k].z * al, A[k].w * al);
            const float4 *src = reinterpret_cast<const float4 *>(part_acc + (int64_t(c0) * H + h0 + h) * D) + d4;
#pragma unroll 16
            for (int i = 0; i < n; i++) {
                const float4 v = __ldcg(src + int64_t(i) * H * D4);
                const float f = s_wm[i * group + h];
                if (f != 0.f) {
                    a.x = fmaf(f, v.x, a.x);
                    a.y = fmaf(f, v.y, a.y);
                    a.z = fmaf(f, v.z, a.z);
                    a.w = fmaf(f, v.w, a.w);
                }
            }
            A[k] = a;
        }
        __syncthreads();  // s_w is refilled by the next chunk
    }
#pragma unroll
    for (int k = 0; k < IPT; k++) {
        const int e = threadIdx.x + k * NT;
        if (e >= group * D4) break;
        const int h = e / D4, d4 = e % D4;
        const float S = s_S[h], inv = S > 0.f ? 1.f / S : 0.f;
        *reinterpret_cast<float4 *>(out + int64_t(h0 + h) * D + 4 * d4) =
            make_float4(A[k].x * inv, A[k].y * inv, A[k].z * inv, A[k].w * inv);
        if (lse && d4 == 0) lse[h0 + h] = S > 0.f ? s_M[h] + logf(S) : -INFINITY;
    }
}

// MMA (options().tactic_mma, head_dim <= 128): the same pipeline, each stage's scores and
// values on tensor cores. The group's query heads are the rows of the 16-row A tile:
// head g's q in f16 hi parts in row g and lo parts in row g + 8 (G <= 8), so S = c(row g)
// + c(row g+8) keeps q in 22 bits; the weights P the same way (hi in row g, lo in row
// g + 8) for O = P V, and O = o(row g) + o(row g+8). K and V stay f16, as cached.
//
// FZ > 0 (tactic_select 9, 10; group budget at a forced fraction, head_dim 128): the step's
// selection fused in front (FZ 2 also scoring the centroids, as selection 5): grid nsl x
// n_head_kv, block (j, g) first cuts slice j of KV head g (cut3_cut, selection 4's cut; its
// shared memory in the stream buffers), writes its chosen rows to its own region of the
// scratch fz.rows (the slice's clusters' rows: no offset to agree on), and publishes their
// count; once every slice's is (a third barrier, that carries the counts) they give the
// list's layout (the always-attended tokens, then slice 0's rows, slice 1's, ...), and the
// block attends piece j of nsl equal pieces of it: no list kernel boundary, no cursor, no
// exit counter. The codes of its rows
// are read from the scratch (and written to the list for the harness, which nothing in the
// step reads). The KV head's last block merges and resets the selection's counters.
struct FuseArgs {
    const int32_t *d_pos = nullptr;
    float frac = 0.f;
    float *cscore = nullptr, *spart = nullptr;
    int nbx = 0, nsl = 0;
    int32_t *ws = nullptr, *rows = nullptr, *list = nullptr, *count = nullptr;
};

//
// ST (options().tactic_stream, the fused step only; a template argument, so that 0 compiles
// to the code before it): 8 the first stages' copies issued before q's fragments are built
// (docs/results/gpu_session13.md: 0.8-0.9 us a step less on the H200).
template <int D, int G, bool MMA, int W, bool PTAIL, bool BULK = false, int FZ = 0, int ST = 0>
__global__ void __launch_bounds__(W * 32) attend_stream_kernel(
    TacticLayerDev L, const float *__restrict__ q, float scale, const int32_t *__restrict__ list,
    const int32_t *__restrict__ count, float *__restrict__ part_acc, float *__restrict__ part_ml,
    int32_t *__restrict__ done, int nb, float *__restrict__ out, float *__restrict__ lse, int align, FuseArgs fz) {
    constexpr int LPT = D / 8, TPW = 32 / LPT, R = 2048 / D, STEPS = R / TPW, CPL = R * LPT / 32;
    constexpr int NT = W * 32, kMaxKv = 64;
    constexpr int LDS = MMA ? D + 8 : D;  // stage row stride, halves
    static_assert(R <= 32 && CPL * 32 == R * LPT, "stage shape");
    static_assert(!MMA || (G <= 8 && D <= 128 && R % 16 == 0), "MMA variant shape");
    extern __shared__ uint4 stream_smem_raw[];
    __half *smem = reinterpret_cast<__half *>(stream_smem_raw);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, slot = lane / LPT, dl = lane % LPT;
    const int H = L.n_head, Hkv = L.n_head_kv, group = H / Hkv;
    const int b = FZ > 0 ? blockIdx.y * fz.nsl + blockIdx.x : blockIdx.x;
    __shared__ int s_cnt[kMaxKv];
    __shared__ float s_p[W][G][R];
    __shared__ float s_m[W][G], s_l[W][G];
    __shared__ int s_last;
    // FZ: the slices' first rows in the list after the always-attended ones (s_pre), their
    // regions of the scratch (s_reg); the list's length, the always-attended tokens.
    __shared__ int s_pre[kSpMaxSlices + 1], s_reg[kSpMaxSlices], s_fz[4];
    // FZ 1, 3 (selection 9, 2 or 4 clusters a thread): the list's layout (tactic_fused_cut.cuh)
    constexpr bool FC = FZ == 1 || FZ == 3;
    __shared__ std::conditional_t<FC, FusedCutShared, int> s_fc;
    int32_t *fz_w = nullptr;
    trace_mark(b, 0);
    if constexpr (FC) {
        static_assert(MMA && !BULK && W * 32 == kSpThreads, "the fused step's shape");
        const int kvh = blockIdx.y, blk = blockIdx.x, nsl = fz.nsl, tid = threadIdx.x;
        fz_w = fz.ws + int64_t(kvh) * c3_ws_ints(2 * G);
        const int C = L.n_clusters[kvh], per = (C + nsl - 1) / nsl;
        const int32_t *coff = L.coff + int64_t(kvh) * (L.cmax + 1);
        if (tid < nsl) s_reg[tid] = C > 0 ? coff[min(tid * per, C)] - coff[0] : 0;  // (static data: before the wait)
        fused_cut<G, FZ == 3 ? 4 : 2>(L, fz.d_pos, fz.frac, scale, fz.cscore, fz.spart, fz.nbx, fz_w, nsl, kvh, blk,
                                      reinterpret_cast<float *>(smem), fz.rows + int64_t(kvh) * L.n_ctx, s_reg, s_fc);
        if (tid == 0) {
            s_fz[0] = s_fc.total;
            s_fz[1] = s_fc.n_fix;
            s_fz[2] = s_fc.cb;
            s_fz[3] = s_fc.ce;
        }
        __syncthreads();
        if (blk == 0 && tid == 0) fz.count[kvh] = s_fz[0];
    } else if constexpr (FZ == 2) {
        static_assert(MMA && !BULK && W * 32 == kSpThreads, "the fused step's shape");
        const int kvh = blockIdx.y, blk = blockIdx.x, nsl = fz.nsl, tid = threadIdx.x;
        fz_w = fz.ws + int64_t(kvh) * c3_ws_ints(2 * G);
        int32_t *slice_rows = fz_w + kC3Slices;
        const int C = L.n_clusters[kvh], per = (C + nsl - 1) / nsl;
        const int32_t *coff = L.coff + int64_t(kvh) * (L.cmax + 1);
        if (tid < nsl) s_reg[tid] = C > 0 ? coff[min(tid * per, C)] - coff[0] : 0;  // (static data: before the wait)
        float *s_h = reinterpret_cast<float *>(smem);
        float(*s_sc)[kSpPer] = reinterpret_cast<float(*)[kSpPer]>(s_h + kOneB);
        uint8_t *s_take = reinterpret_cast<uint8_t *>(s_h + kOneB + G * kSpPer);
        int first[kSpItems], tok[kSpItems];
        bool in[kSpItems], sel[kSpItems];
        const Cut3Out co = cut3_cut<0, G, true, FZ == 2 ? D : 0>(L, fz.d_pos, fz.frac, 0.f, scale, q, fz.cscore, fz.spart,
                                                                 fz.nbx, fz_w, nsl, kvh, blk, s_h, s_sc, s_take, first,
                                                                 tok, in, sel);
        const int my_rows = cut3_write_rows(sel, first, tok, fz.rows + int64_t(kvh) * L.n_ctx,
                                            [&](int) { return s_reg[blk]; }, s_h);
        trace_mark(b, 8);
        // Publish this slice's count (+ 1: zero is "not yet"), its rows written before (the
        // release orders the block's writes, ordered before thread 0's by the barrier of
        // cut3_write_rows); wait for every slice's: a barrier that carries the counts.
        if (tid == 0) {
            asm volatile("fence.acq_rel.gpu;\n" ::: "memory");
            asm volatile("st.relaxed.gpu.global.b32 [%0], %1;\n" ::"l"(slice_rows + blk), "r"(my_rows + 1) : "memory");
        }
        if (warp == 0) {
            int v = 0;
            if (lane < nsl)
                while (true) {
                    asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(v) : "l"(slice_rows + lane) : "memory");
                    if (v != 0) break;
                    __nanosleep(32);
                }
            v = v > 0 ? v - 1 : 0;
#pragma unroll
            for (int o = 1; o < 32; o <<= 1) {
                const int u = __shfl_up_sync(0xffffffffu, v, o);
                if (lane >= o) v += u;
            }
            if (lane < nsl) s_pre[lane + 1] = v;
            const int chosen = __shfl_sync(0xffffffffu, v, nsl - 1);
            if (lane == 0) {
                s_pre[0] = 0;
                const int n = co.n, cb = min(L.range[0], n), ce = min(max(L.range[1], cb), n);
                s_fz[0] = cb + (n - ce) + chosen;
                s_fz[1] = cb + (n - ce);
                s_fz[2] = cb;
                s_fz[3] = ce;
            }
        }
        __syncthreads();
        if (blk == 0 && tid == 0) fz.count[kvh] = s_fz[0];
    } else {
        pdl_wait();  // count, the lists and q come from earlier kernels of the step
        pdl_trigger();
        for (int k = threadIdx.x; k < Hkv && k < kMaxKv; k += NT) s_cnt[k] = count[k];
        __syncthreads();
    }
    trace_mark(b, 9);
    auto cnt_of = [&](int k) { return FZ > 0 ? s_fz[0] : k < kMaxKv ? s_cnt[k] : count[k]; };
    int64_t tot = 0;
    for (int k = 0; k < (FZ > 0 ? 0 : Hkv); k++) tot += cnt_of(k);
    const int nbe = FZ > 0 ? 1 : active_blocks(tot, nb);
    const int64_t r0 = b < nbe ? piece_start(tot, b, nbe) : tot, r1 = b < nbe ? piece_start(tot, b + 1, nbe) : tot;
    // align (tactic_attend 5, 6): pieces never span two KV heads, so that no block runs two
    // pipelines one after the other (measured: the late blocks of the unaligned cut, such a
    // block or a KV head's last block merging, leave the multiprocessors idle half the
    // kernel). Each nonempty KV head gets one block plus its share of the other nba - n_ne
    // in proportion to its list (heads' first blocks in order), at most one a row; the
    // unaligned cut where the grid has fewer blocks than nonempty heads.
    int n_ne = 0;
    for (int k = 0; k < Hkv; k++) n_ne += cnt_of(k) > 0;
    const bool aligned = align != 0 && n_ne > 0 && nb >= n_ne;
    const int nba = min(nb, max(nbe, n_ne));
    int ne_before = 0;
    __half *wbuf = smem + warp * (kStreamStages * 2 * R * LDS);
    // BULK (tactic_attend 4, sm_90): a stage's rows arrive by one TMA bulk copy a row, on one
    // mbarrier a warp's stage. The stages a warp used before this KV head (gbase) keep the
    // buffers' round robin and the barriers' phases running across KV heads.
    __shared__ __align__(8) uint64_t s_bar[BULK ? W : 1][kStreamStages];
    if constexpr (BULK) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        if (lane == 0)
            for (int st = 0; st < kStreamStages; st++) mbar_init(shared_addr(&s_bar[warp][st]));
        mbar_init_fence();
        __syncwarp();
#else
        __trap();  // launched only on sm_90 and later (attend_stream_dg)
#endif
    }
    int gbase = 0;

    int64_t start = 0;
    for (int kvh = FZ > 0 ? blockIdx.y : 0; kvh < (FZ > 0 ? blockIdx.y + 1 : Hkv); kvh++) {
        const int cnt = cnt_of(kvh);
        const int64_t kv_start = start;
        // this block's rows [s0, s1) of the KV head; the head's blocks bt0 .. bt1 - 1 (consecutive)
        int s0, s1, bt0, bt1;
        if (FZ > 0) {  // piece blockIdx.x of nsl (empty where the list has fewer rows); every block merges in
            const int nk = min(fz.nsl, cnt), j = blockIdx.x;
            bt0 = kvh * fz.nsl;
            bt1 = bt0 + fz.nsl;
            s0 = j < nk ? int(int64_t(cnt) * j / nk) : 0;
            s1 = j < nk ? int(int64_t(cnt) * (j + 1) / nk) : 0;
        } else if (aligned) {
            const int f0 = ne_before + int(kv_start * (nba - n_ne) / tot);
            const int f1 = ne_before + (cnt > 0) + int((kv_start + cnt) * (nba - n_ne) / tot);
            const int nk = min(f1 - f0, cnt), j = b - f0;
            bt0 = f0;
            bt1 = f0 + nk;
            s0 = j >= 0 && j < nk ? int(int64_t(cnt) * j / nk) : 0;
            s1 = j >= 0 && j < nk ? int(int64_t(cnt) * (j + 1) / nk) : 0;
        } else {
            s0 = int(max(r0, start) - start);
            s1 = int(min(r1, start + cnt) - start);
            bt0 = cnt > 0 ? block_of_row(tot, nbe, kv_start) : 0;
            bt1 = cnt > 0 ? block_of_row(tot, nbe, kv_start + cnt - 1) + 1 : 0;
        }
        start += cnt;
        ne_before += cnt > 0;
        const int h0 = kvh * group;
        if (cnt == 0 && FZ == 0) {  // nothing to attend: no block touches this KV head, block 0 writes its zeros
            if (b == 0) {
                for (int e = threadIdx.x; e < group * D; e += NT) out[int64_t(h0) * D + e] = 0.f;
                if (lse)
                    for (int h = threadIdx.x; h < group; h += NT) lse[h0 + h] = -INFINITY;
            }
            continue;
        }
        if (s0 >= s1 && FZ == 0) continue;  // block-uniform (FZ: an empty piece still writes its empty partial)
        const int32_t *lst = list + int64_t(kvh) * L.n_ctx;
        const __half *Kc = L.k_cache + int64_t(kvh) * L.n_ctx * D, *Vc = L.v_cache + int64_t(kvh) * L.n_ctx * D;
        const __half *Ks = L.ks + int64_t(kvh) * L.cap * D, *Vs = L.vs + int64_t(kvh) * L.cap * D;
        float qr[G][8], acc[G][8], m[G], l[G];
        // MMA: the A fragments of q (hi/lo rows) for every k-step, O, this lane's head's m and l
        constexpr int DK = D / 16, DTN = D / 8, NTS = R / 8;
        uint32_t qf[MMA ? DK : 1][4];
        float o[MMA ? DTN : 1][4];
        float mm = -INFINITY, ml = 0.f;
        // ST 8 (fused step): q's fragments built after the first stages' copies are issued
        constexpr bool kEarly = FZ > 0 && (ST & 8);
        auto build_qf = [&]() {
            if constexpr (MMA) {
                const int g = lane / 4, t = lane % 4;
                const float *qg = q + int64_t(h0 + g) * D;
#pragma unroll
                for (int kk = 0; kk < DK; kk++) {
                    const int d0 = kk * 16 + 2 * t;
                    const bool ok = g < group;
                    split_f16x2(ok ? qg[d0] * scale : 0.f, ok ? qg[d0 + 1] * scale : 0.f, qf[kk][0], qf[kk][1]);
                    split_f16x2(ok ? qg[d0 + 8] * scale : 0.f, ok ? qg[d0 + 9] * scale : 0.f, qf[kk][2], qf[kk][3]);
                }
            }
        };
        if constexpr (!kEarly) build_qf();
        if constexpr (MMA) {
#pragma unroll
            for (int dt = 0; dt < DTN; dt++) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.f;
        } else {
#pragma unroll
            for (int h = 0; h < G; h++) {
                m[h] = -INFINITY;
                l[h] = 0.f;
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    qr[h][i] = h < group ? q[int64_t(h0 + h) * D + dl * 8 + i] * scale : 0.f;
                    acc[h][i] = 0.f;
                }
            }
        }
        // This warp's stages: rows [s0 + (warp + W k) R, + R), k < n_k.
        const int span = s1 - s0 - warp * R;
        const int n_k = span > 0 ? (span + W * R - 1) / (W * R) : 0;
        auto stage_row0 = [&](int k) { return s0 + (warp + W * k) * R; };
        auto load_code = [&](int k) {  // lane r: the list code of row r of stage k
            const int t = stage_row0(k) + lane;
            if (!(k < n_k && lane < R && t < s1)) return kNoRow;
            if constexpr (FC) {
                int code;
                if (t < s_fz[1]) {
                    code = -1 - (t < s_fz[2] ? t : s_fz[3] + (t - s_fz[2]));
                } else if (t - s_fz[1] < s_fc.pre[fz.nsl]) {  // slice lo's sure rows: the last slice starting at most u
                    const int u = t - s_fz[1];
                    int lo = 0, hi = fz.nsl - 1;
                    while (lo < hi) {
                        const int mid = (lo + hi + 1) / 2;
                        if (s_fc.pre[mid] <= u) lo = mid;
                        else hi = mid - 1;
                    }
                    code = __ldcg(fz.rows + int64_t(kvh) * L.n_ctx + s_reg[lo] + (u - s_fc.pre[lo]));
                } else {  // taken candidate k: the last starting at most w
                    const int w = t - s_fz[1] - s_fc.pre[fz.nsl];
                    int lo = 0, hi = s_fc.n_cand - 1;
                    while (lo < hi) {
                        const int mid = (lo + hi + 1) / 2;
                        if (s_fc.cand_pre[mid] <= w) lo = mid;
                        else hi = mid - 1;
                    }
                    code = s_fc.cand_first[lo] + (w - s_fc.cand_pre[lo]);
                }
                fz.list[int64_t(kvh) * L.n_ctx + t] = code;
                return code;
            } else if constexpr (FZ > 0) {
                int code;
                if (t < s_fz[1]) {
                    code = -1 - (t < s_fz[2] ? t : s_fz[3] + (t - s_fz[2]));
                } else {  // slice sl: the last whose first row is at most u
                    const int u = t - s_fz[1];
                    int lo = 0, hi = fz.nsl - 1;
                    while (lo < hi) {
                        const int mid = (lo + hi + 1) / 2;
                        if (s_pre[mid] <= u) lo = mid;
                        else hi = mid - 1;
                    }
                    code = __ldcg(fz.rows + int64_t(kvh) * L.n_ctx + s_reg[lo] + (u - s_pre[lo]));
                }
                fz.list[int64_t(kvh) * L.n_ctx + t] = code;
                return code;
            } else {
                return lst[t];
            }
        };
        auto buf = [&](int k) { return (gbase + k) % kStreamStages; };  // stage k's buffer
        auto issue = [&](int code_reg, int st) {  // stage rows' K and V -> buffer st
            __half *sk = wbuf + st * (2 * R * LDS), *sv = sk + R * LDS;
            if constexpr (BULK) {
                // lane e < R: K row e, R <= e < 2R: V row e - R; a row past the piece's end
                // repeats row 0 (always in the piece; its score is masked, its V finite)
                const uint32_t bar = shared_addr(&s_bar[warp][st]);
                if (lane == 0) mbar_expect(bar, 2 * R * D * sizeof(__half));
                __syncwarp();
                const int code0 = __shfl_sync(0xffffffffu, code_reg, 0);
#pragma unroll
                for (int i = 0; i < (2 * R + 31) / 32; i++) {
                    const int e = lane + 32 * i, r = e % R;
                    int code = __shfl_sync(0xffffffffu, code_reg, r);
                    code = code == kNoRow ? code0 : code;
                    const bool isv = e >= R;
                    const int64_t off = int64_t(code >= 0 ? code : -1 - code) * D;
                    const __half *src = (code >= 0 ? (isv ? Vs : Ks) : (isv ? Vc : Kc)) + off;
                    if (e < 2 * R) bulk_to_shared(shared_addr((isv ? sv : sk) + r * LDS), src, D * sizeof(__half), bar);
                }
            } else {
#pragma unroll
                for (int i = 0; i < CPL; i++) {
                    const int j = lane + 32 * i, row = j / LPT, col = j % LPT;
                    const int code = __shfl_sync(0xffffffffu, code_reg, row);
                    const bool valid = code != kNoRow;
                    const int64_t off = (valid ? int64_t(code >= 0 ? code : -1 - code) * D : 0) + col * 8;
                    copy16_async(sk + row * LDS + col * 8, (code >= 0 ? Ks : Kc) + off, valid);
                    copy16_async(sv + row * LDS + col * 8, (code >= 0 ? Vs : Vc) + off, valid);
                }
            }
        };
        int codes[kStreamStages];
#pragma unroll
        for (int i = 0; i < kStreamStages; i++) codes[i] = load_code(i);
#pragma unroll
        for (int i = 0; i < kStreamStages - 1; i++) {
            if (i < n_k) issue(codes[i], buf(i));
            copy_commit_group();
        }
        if constexpr (kEarly) build_qf();
        int code_next = codes[kStreamStages - 1];
        for (int k = 0; k < n_k; k++) {
            if constexpr (BULK) {
                mbar_wait(shared_addr(&s_bar[warp][buf(k)]), uint32_t((gbase + k) / kStreamStages) & 1u);
                fence_async_shared();  // this lane's reads of the buffer refilled next, before the copies
            } else {
                copy_wait_group<kStreamStages - 2>();  // stage k's copies of this lane are done
            }
            __syncwarp();  // ... and of every lane; every lane is done with the buffer refilled next
            const int kn = k + kStreamStages - 1;
            if (kn < n_k) issue(code_next, buf(kn));
            copy_commit_group();
            code_next = load_code(kn + 1);
            const int n_in = min(R, s1 - stage_row0(k));
            if constexpr (MMA) {
                const int t = lane % 4;
                const __half *sk0 = wbuf + buf(k) * (2 * R * LDS);
                const uint32_t kb = uint32_t(__cvta_generic_to_shared(sk0));
                const uint32_t vb = kb + uint32_t(R * LDS * sizeof(__half));
                // S = Q K^T: one ldmatrix.x4 of an 8-row n-tile gives b0, b1 of k-steps kk, kk+1
                float sc[NTS][4];
#pragma unroll
                for (int nt = 0; nt < NTS; nt++) sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.f;
#pragma unroll
                for (int kk = 0; kk < DK; kk += 2) {
#pragma unroll
                    for (int nt = 0; nt < NTS; nt++) {
                        uint32_t b[4];
                        ldsm4(b, kb + uint32_t(((nt * 8 + lane % 8) * LDS + kk * 16 + (lane / 8) * 8) * sizeof(__half)));
                        mma16816(sc[nt], qf[kk], b[0], b[1]);
                        mma16816(sc[nt], qf[kk + 1], b[2], b[3]);
                    }
                }
                // head g's scores of rows 8nt + 2t + j: hi row + lo row; rows past the piece: -inf
                float mx = mm;
#pragma unroll
                for (int nt = 0; nt < NTS; nt++)
#pragma unroll
                    for (int j = 0; j < 2; j++) {
                        const float v = nt * 8 + 2 * t + j < n_in ? sc[nt][j] + sc[nt][j + 2] : -INFINITY;
                        sc[nt][j] = v;
                        mx = fmaxf(mx, v);
                    }
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                const float alpha = expf(mm - mx);  // mx is finite: the stage has a row
                mm = mx;
                float ps = 0.f;
#pragma unroll
                for (int nt = 0; nt < NTS; nt++)
#pragma unroll
                    for (int j = 0; j < 2; j++) {
                        sc[nt][j] = expf(sc[nt][j] - mx);
                        ps += sc[nt][j];
                    }
                ml = ml * alpha + ps;
#pragma unroll
                for (int dt = 0; dt < DTN; dt++) {
                    o[dt][0] *= alpha;
                    o[dt][1] *= alpha;
                    o[dt][2] *= alpha;
                    o[dt][3] *= alpha;
                }
                // O += P V: rows 16ks.. of the stage; P's hi parts in row g, lo parts in row g + 8
#pragma unroll
                for (int ks = 0; ks < R / 16; ks++) {
                    uint32_t a[4];
                    split_f16x2(sc[2 * ks][0], sc[2 * ks][1], a[0], a[1]);
                    split_f16x2(sc[2 * ks + 1][0], sc[2 * ks + 1][1], a[2], a[3]);
#pragma unroll
                    for (int dt = 0; dt < DTN; dt += 2) {
                        uint32_t b[4];
                        ldsm4_t(b, vb + uint32_t(((ks * 16 + lane % 8 + ((lane / 8) % 2) * 8) * LDS + dt * 8 +
                                                  (lane / 16) * 8) * sizeof(__half)));
                        mma16816(o[dt], a, b[0], b[1]);
                        mma16816(o[dt + 1], a, b[2], b[3]);
                    }
                }
                continue;
            }
            const __half *sk = wbuf + buf(k) * (2 * R * LDS) + dl * 8, *sv = sk + R * LDS;
            // 1. scores, D / 8 lanes a row
#pragma unroll
            for (int s = 0; s < STEPS; s++) {
                const int row = s * TPW + slot;
                float kf[8];
                h8_to_f(*reinterpret_cast<const uint4 *>(sk + row * D), kf);
#pragma unroll
                for (int h = 0; h < G; h++) {
                    float d = 0.f;
#pragma unroll
                    for (int i = 0; i < 8; i++) d = fmaf(qr[h][i], kf[i], d);
#pragma unroll
                    for (int o = LPT / 2; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
                    if (dl == 0) s_p[warp][h][row] = row < n_in ? d : -INFINITY;
                }
            }
            __syncwarp();
            // 2. online softmax, lane = row of the stage
#pragma unroll
            for (int h = 0; h < G; h++) {
                const float sv_ = lane < R ? s_p[warp][h][lane] : -INFINITY;
                const float m_new = fmaxf(m[h], warp_max(sv_));
                const float alpha = expf(m[h] - m_new);
                const float p = expf(sv_ - m_new);
                l[h] = l[h] * alpha + warp_sum(p);
                m[h] = m_new;
                if (lane < R) s_p[warp][h][lane] = p;
#pragma unroll
                for (int i = 0; i < 8; i++) acc[h][i] *= alpha;
            }
            __syncwarp();
            // 3. values
#pragma unroll
            for (int s = 0; s < STEPS; s++) {
                const int row = s * TPW + slot;
                float vf[8];
                h8_to_f(*reinterpret_cast<const uint4 *>(sv + row * D), vf);
#pragma unroll
                for (int h = 0; h < G; h++) {
                    const float p = s_p[warp][h][row];
#pragma unroll
                    for (int i = 0; i < 8; i++) acc[h][i] = fmaf(p, vf[i], acc[h][i]);
                }
            }
            __syncwarp();  // s_p is rewritten by the next stage
        }
        copy_wait_group<0>();  // (BULK: every stage issued was waited for in the loop)
        if constexpr (BULK) gbase += n_k;
        // The token slots of a warp hold parts of the sum; then the warps are merged
        // (their sums staged in the stream buffers, free once every warp is done).
        if constexpr (!MMA) {
#pragma unroll
            for (int h = 0; h < G; h++)
#pragma unroll
                for (int i = 0; i < 8; i++)
#pragma unroll
                    for (int o = LPT; o < 32; o <<= 1) acc[h][i] += __shfl_xor_sync(0xffffffffu, acc[h][i], o);
        } else {
            ml += __shfl_xor_sync(0xffffffffu, ml, 1);
            ml += __shfl_xor_sync(0xffffffffu, ml, 2);
        }
        __syncthreads();
        trace_mark(b, 10);
        float *s_acc = reinterpret_cast<float *>(smem);  // [W][G][D]
        if constexpr (MMA) {
            const int g = lane / 4, t = lane % 4;
            if (g < G) {
#pragma unroll
                for (int dt = 0; dt < DTN; dt++) {
                    float *dst = s_acc + (warp * G + g) * D + dt * 8 + 2 * t;
                    dst[0] = o[dt][0] + o[dt][2];
                    dst[1] = o[dt][1] + o[dt][3];
                }
                if (t == 0) {
                    s_m[warp][g] = mm;
                    s_l[warp][g] = ml;
                }
            }
        } else if (slot == 0) {
#pragma unroll
            for (int h = 0; h < G; h++)
#pragma unroll
                for (int i = 0; i < 8; i++) s_acc[(warp * G + h) * D + dl * 8 + i] = acc[h][i];
        }
        if (!MMA && lane == 0) {
#pragma unroll
            for (int h = 0; h < G; h++) {
                s_m[warp][h] = m[h];
                s_l[warp][h] = l[h];
            }
        }
        __syncthreads();
        for (int e = threadIdx.x; e < group * D; e += NT) {
            const int h = e / D, d = e % D;
            float M = -INFINITY;
#pragma unroll
            for (int w = 0; w < W; w++) M = fmaxf(M, s_m[w][h]);
            float A = 0.f, S = 0.f;
            if (M != -INFINITY) {
#pragma unroll
                for (int w = 0; w < W; w++) {
                    const float f = expf(s_m[w][h] - M);
                    A = fmaf(f, s_acc[(w * G + h) * D + d], A);
                    S = fmaf(f, s_l[w][h], S);
                }
            }
            const int64_t row = int64_t(b) * H + h0 + h;
            part_acc[row * D + d] = A;
            if (d == 0) {
                part_ml[row * 2] = M;
                part_ml[row * 2 + 1] = S;
            }
        }
        // E. The last block done with this KV head merges its partials (threadfence
        // reduction: partials visible device-wide before the counter says so).
        __threadfence();
        __syncthreads();
        // The blocks that work on this KV head: bt0 .. bt1 - 1 (consecutive).
        if (threadIdx.x == 0) s_last = atomicAdd(&done[kvh], 1) == bt1 - bt0 - 1;
        __syncthreads();
        trace_mark(b, 11);
        if (s_last && PTAIL) {
            __threadfence();
            merge_kv_head_wide<D, G, NT>(part_acc, part_ml, H, h0, group, bt0, bt1, out, lse,
                                         reinterpret_cast<float *>(smem));
            if (threadIdx.x == 0) done[kvh] = 0;  // ready for the next step (graph replays)
            if (FZ > 0 && threadIdx.x == 0) {  // every block of the KV head is past the selection's barriers:
                fz_w[0] = 0;                   // cut3_cut's bar, the one cut's candidate count, the slices' counts
                fz_w[3] = 0;
                for (int j = 0; j < fz.nsl; j++) fz_w[kC3Slices + j] = 0;
            }
        } else if (s_last) {
            __threadfence();
            // Each thread combines 4 dimensions of one head over the KV head's blocks, 8
            // blocks' partials loaded before any is used.
            constexpr int D4 = D / 4;
            for (int e = threadIdx.x; e < group * D4; e += NT) {
                const int h = e / D4, d4 = e % D4;
                float M = -INFINITY, S = 0.f;
                float4 A = make_float4(0.f, 0.f, 0.f, 0.f);
                for (int bb0 = bt0; bb0 < bt1; bb0 += 8) {
                    float mb[8], lb[8];
                    float4 ab[8];
#pragma unroll
                    for (int u = 0; u < 8; u++) {
                        const int bb = bb0 + u < bt1 ? bb0 + u : bt0;
                        const int64_t row = int64_t(bb) * H + h0 + h;
                        mb[u] = bb0 + u < bt1 ? __ldcg(part_ml + row * 2) : -INFINITY;
                        lb[u] = __ldcg(part_ml + row * 2 + 1);
                        ab[u] = __ldcg(reinterpret_cast<const float4 *>(part_acc + row * D) + d4);
                    }
#pragma unroll
                    for (int u = 0; u < 8; u++) {
                        if (mb[u] == -INFINITY) continue;
                        const float Mn = fmaxf(M, mb[u]), fa = expf(M - Mn), fb = expf(mb[u] - Mn);
                        A.x = fmaf(ab[u].x, fb, A.x * fa);
                        A.y = fmaf(ab[u].y, fb, A.y * fa);
                        A.z = fmaf(ab[u].z, fb, A.z * fa);
                        A.w = fmaf(ab[u].w, fb, A.w * fa);
                        S = fmaf(lb[u], fb, S * fa);
                        M = Mn;
                    }
                }
                const float inv = S > 0.f ? 1.f / S : 0.f;
                *reinterpret_cast<float4 *>(out + int64_t(h0 + h) * D + 4 * d4) =
                    make_float4(A.x * inv, A.y * inv, A.z * inv, A.w * inv);
                if (lse && d4 == 0) lse[h0 + h] = S > 0.f ? M + logf(S) : -INFINITY;
            }
            if (threadIdx.x == 0) done[kvh] = 0;  // ready for the next step (graph replays)
        }
        if constexpr (BULK) fence_async_shared();  // the merge's accesses, before the next head's copies
        __syncthreads();  // s_acc (the stream buffers), s_p and s_last are reused by the next KV head
        trace_mark(b, 12);
    }
}

// E. out[h] = sum_b e^(m_b - M) acc_b / sum_b e^(m_b - M) l_b over the blocks that
// worked on head h's KV head (found from the counts, as the attention kernel cut them).
// The blocks' rows are read in parallel (a loop of dependent L2 reads would cost more
// than the attention itself): M by a block-wide max, then each warp sums a share of the
// rows (lane = 4 dimensions a step), the warps' sums added in shared memory.
constexpr int kMergeThreads = 256;
__global__ void __launch_bounds__(kMergeThreads) merge_kernel(TacticLayerDev L, const int32_t *__restrict__ count,
                                                              const float *__restrict__ part_acc,
                                                              const float *__restrict__ part_ml, int nb,
                                                              float *__restrict__ out, float *__restrict__ lse) {
    constexpr int kW = kMergeThreads / 32;
    using Reduce = cub::BlockReduce<float, kMergeThreads>;
    __shared__ typename Reduce::TempStorage red_tmp;
    __shared__ float s_M, s_S[kW], s_A[kW][256];
    const int h = blockIdx.x, H = L.n_head, Hkv = L.n_head_kv, D = L.head_dim, kvh = h / (H / Hkv);
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    pdl_wait();
    pdl_trigger();
    int64_t tot = 0, start = 0;
    for (int k = 0; k < Hkv; k++) {
        if (k == kvh) start = tot;
        tot += count[k];
    }
    const int64_t end = start + count[kvh];
    const int nbe = active_blocks(tot, nb);
    const int b_lo = tot > 0 ? int(max(int64_t(0), start * nbe / tot - 1)) : 0;
    const int b_hi = tot > 0 ? int(min(int64_t(nbe), end * nbe / tot + 2)) : 0;
    float m = -INFINITY;
    for (int b = b_lo + tid; b < b_hi; b += kMergeThreads) m = fmaxf(m, part_ml[(int64_t(b) * H + h) * 2]);
    m = Reduce(red_tmp).Reduce(m, [](float x, float y) { return fmaxf(x, y); });
    if (tid == 0) s_M = m;
    __syncthreads();
    const float M = s_M;
    float A[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f}, S = 0.f;  // lane: dims 4 lane + 128 i, i < D / 128
    if (M != -INFINITY) {
        for (int b = b_lo + warp; b < b_hi; b += kW) {
            const int64_t row = int64_t(b) * H + h;
            const float mb = part_ml[row * 2];
            if (mb == -INFINITY) continue;  // warp-uniform
            const float f = expf(mb - M);
            S = fmaf(f, part_ml[row * 2 + 1], S);
            for (int i = 0; 4 * lane + 128 * i < D; i++) {
                const float4 a4 = *reinterpret_cast<const float4 *>(part_acc + row * D + 4 * lane + 128 * i);
                A[4 * i] = fmaf(f, a4.x, A[4 * i]);
                A[4 * i + 1] = fmaf(f, a4.y, A[4 * i + 1]);
                A[4 * i + 2] = fmaf(f, a4.z, A[4 * i + 2]);
                A[4 * i + 3] = fmaf(f, a4.w, A[4 * i + 3]);
            }
        }
    }
    for (int i = 0; 4 * lane + 128 * i < D; i++)
        for (int j = 0; j < 4; j++) s_A[warp][4 * lane + 128 * i + j] = A[4 * i + j];
    if (lane == 0) s_S[warp] = S;
    __syncthreads();
    for (int d = tid; d < D; d += kMergeThreads) {
        float a = 0.f, sum = 0.f;
        for (int w = 0; w < kW; w++) {
            a += s_A[w][d];
            sum += s_S[w];
        }
        out[int64_t(h) * D + d] = sum > 0.f ? a / sum : 0.f;
        if (lse && d == 0) lse[h] = sum > 0.f ? M + logf(sum) : -INFINITY;
    }
}

__global__ void pack_kernel(const __half *__restrict__ k_cache, const __half *__restrict__ v_cache, int n_ctx, int D,
                            const int32_t *__restrict__ order, int cap, int len, __half *__restrict__ ks,
                            __half *__restrict__ vs) {
    const int g = blockIdx.y, chunks = D / 8;
    const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= int64_t(len) * chunks) return;
    const int o = int(e / chunks), j = int(e % chunks);
    const int64_t src = (int64_t(g) * n_ctx + order[int64_t(g) * cap + o]) * D + j * 8;
    const int64_t dst = (int64_t(g) * cap + o) * D + j * 8;
    *reinterpret_cast<uint4 *>(ks + dst) = *reinterpret_cast<const uint4 *>(k_cache + src);
    *reinterpret_cast<uint4 *>(vs + dst) = *reinterpret_cast<const uint4 *>(v_cache + src);
}

// Where the merges write each head's log-sum-exp: for the output estimate, when it runs.
float *tail_lse(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b) {
    return tactic_tail_on(L, a, b) ? b.lse : nullptr;
}

template <int D, int G>
void attend_dg(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    launch_pdl(attend_kernel<D, G>, dim3(unsigned(b.n_blocks)), dim3(kWarps * 32), 0, s, L, a.q, a.scale,
               static_cast<const int32_t *>(b.list), static_cast<const int32_t *>(b.count), b.part_acc, b.part_ml,
               b.n_blocks);
}

// The tensor-core variant where it applies (head_dim <= 128, options().tactic_mma).
template <int D>
bool use_mma() {
    return D <= 128 && options().tactic_mma != 0;
}

// The MMA stream kernel's shape under options().tactic_attend: 1 four warps a block and
// the sequential merge tail; 2 eight warps a block (head_dim 128; fewer blocks, so fewer
// partials a KV head) and the parallel tail (merge_kv_head_wide); 3 four warps and the
// parallel tail.
template <int D>
int stream_warps() {
    return D == 128 && (options().tactic_attend == 2 || options().tactic_attend == 5) ? 8 : kStreamWarps;
}
// tactic_attend 5, 6: 2, 3 with pieces that never span two KV heads (head_dim 128).
int stream_align() { return options().tactic_attend >= 5 ? 1 : 0; }
bool stream_wide_tail() { return options().tactic_attend >= 2; }
// tactic_attend 4: variant 3 with TMA bulk row copies, where the GPU has them (sm_90+; else 3).
bool stream_bulk() { return options().tactic_attend == 4 && device_limits().cc_major >= 9; }

// Whether a stream kernel's stage buffers fit a block on this device (asked once a kernel).
template <int D, int G, bool MMA, int W, bool PT, bool BULK = false, int FZ = 0, int ST = 0>
bool stream_fits() {
    static const bool fits = smem_fits(attend_stream_kernel<D, G, MMA, W, PT, BULK, FZ, ST>, stream_smem(D, W));
    return fits;
}

// The unfused stream kernel a step launches (options, head_dim and what fits the device):
// four warps' stage buffers are 101-108 KB (eight warps' 204 KB at head_dim 128), so on 99 KB
// cards (sm_86 / sm_89) every kind runs with kStreamWarpsSmall warps, and on 163 KB ones
// (sm_80) the eight-warp kind with four.
enum class StreamKind { kBulk, kWide8, kWide, kWideSmall, kMma, kMmaSmall, kFma, kFmaSmall };
constexpr int kStreamWarpsSmall = 3;
template <int D, int G>
StreamKind stream_kind() {
    if constexpr (D <= 128 && G <= 8) {
        if (use_mma<D>()) {
            if constexpr (D == 128) {  // (the variants exist for head_dim 128: the 8B shape measured)
                if (stream_bulk()) return StreamKind::kBulk;  // (sm_90: 227 KB)
                if (stream_wide_tail()) {
                    if (stream_warps<D>() == 8 && stream_fits<D, G, true, 8, true>()) return StreamKind::kWide8;
                    return stream_fits<D, G, true, kStreamWarps, true>() ? StreamKind::kWide : StreamKind::kWideSmall;
                }
            }
            return stream_fits<D, G, true, kStreamWarps, false>() ? StreamKind::kMma : StreamKind::kMmaSmall;
        }
    }
    return stream_fits<D, G, false, kStreamWarps, false>() ? StreamKind::kFma : StreamKind::kFmaSmall;
}

template <int D, int G, int W, bool PT, bool BULK = false>
void launch_stream_mma(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    launch_pdl(attend_stream_kernel<D, G, true, W, PT, BULK>, dim3(unsigned(b.n_blocks)), dim3(W * 32), stream_smem(D, W), s,
               L, a.q, a.scale, static_cast<const int32_t *>(b.list), static_cast<const int32_t *>(b.count), b.part_acc,
               b.part_ml, b.done, b.n_blocks, a.out, tail_lse(L, a, b), PT ? stream_align() : 0, FuseArgs{});
}

// tactic_select 9, 10: the fused step (FuseArgs), grid nsl x n_head_kv.
template <int D, int G, int FZ>
void launch_stream_fused(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, int nsl,
                         cudaStream_t s) {
    FuseArgs fz;
    fz.d_pos = a.d_pos;
    fz.frac = a.force_fraction;
    fz.cscore = b.cscore;
    fz.spart = b.spart;
    fz.nbx = FZ == 2 ? nsl : score2_blocks(L.head_dim, L.cmax);
    fz.nsl = nsl;
    fz.ws = b.sel_ws;
    fz.rows = b.rows;
    fz.list = b.list;
    fz.count = b.count;
    auto go = [&](auto kernel) {
        launch_pdl(kernel, dim3(unsigned(nsl), unsigned(L.n_head_kv)), dim3(256), stream_smem(D, 8), s, L, a.q, a.scale,
                   static_cast<const int32_t *>(b.list), static_cast<const int32_t *>(b.count), b.part_acc, b.part_ml,
                   b.done, b.n_blocks, a.out, tail_lse(L, a, b), 0, fz);
    };
    if (options().tactic_stream == 8) return go(attend_stream_kernel<D, G, true, 8, true, false, FZ, 8>);
    go(attend_stream_kernel<D, G, true, 8, true, false, FZ>);
}

template <int D, int G, int W>
void launch_stream_fma(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    launch_pdl(attend_stream_kernel<D, G, false, W, false>, dim3(unsigned(b.n_blocks)), dim3(W * 32), stream_smem(D, W), s,
               L, a.q, a.scale, static_cast<const int32_t *>(b.list), static_cast<const int32_t *>(b.count),
               b.part_acc, b.part_ml, b.done, b.n_blocks, a.out, tail_lse(L, a, b), 0, FuseArgs{});
}

template <int D, int G>
void attend_stream_dg(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    const StreamKind k = stream_kind<D, G>();
    if constexpr (D <= 128 && G <= 8) {
        if constexpr (D == 128) {
            if (k == StreamKind::kBulk) return launch_stream_mma<D, G, kStreamWarps, true, true>(L, a, b, s);
            if (k == StreamKind::kWide8) return launch_stream_mma<D, G, 8, true>(L, a, b, s);
            if (k == StreamKind::kWide) return launch_stream_mma<D, G, kStreamWarps, true>(L, a, b, s);
            if (k == StreamKind::kWideSmall) return launch_stream_mma<D, G, kStreamWarpsSmall, true>(L, a, b, s);
        }
        if (k == StreamKind::kMma) return launch_stream_mma<D, G, kStreamWarps, false>(L, a, b, s);
        if (k == StreamKind::kMmaSmall) return launch_stream_mma<D, G, kStreamWarpsSmall, false>(L, a, b, s);
    }
    if (k == StreamKind::kFmaSmall) return launch_stream_fma<D, G, kStreamWarpsSmall>(L, a, b, s);
    launch_stream_fma<D, G, kStreamWarps>(L, a, b, s);
}

template <int D>
void attend_d(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    if constexpr (D == 128) {
        const int nsl = tactic_fused_slices(L, a, b);
        if (nsl > 0) {  // FZ: 2 selection 10; 1, 3 selection 9 with 2 or 4 clusters a thread
            const int fz = options().tactic_select == 10 ? 2 : L.cmax <= nsl * kSpPer ? 1 : 3;
            auto go = [&](auto g) {
                constexpr int GG = decltype(g)::value;
                if (fz == 2) return launch_stream_fused<D, GG, 2>(L, a, b, nsl, s);
                if (fz == 1) return launch_stream_fused<D, GG, 1>(L, a, b, nsl, s);
                return launch_stream_fused<D, GG, 3>(L, a, b, nsl, s);
            };
            switch (g_of(L.n_head / L.n_head_kv)) {
                case 1: return go(std::integral_constant<int, 1>{});
                case 2: return go(std::integral_constant<int, 2>{});
                case 4: return go(std::integral_constant<int, 4>{});
                default: return go(std::integral_constant<int, 8>{});
            }
        }
    }
    const bool fused = options().tactic_fused != 0;
    switch (g_of(L.n_head / L.n_head_kv)) {
        case 1: fused ? attend_stream_dg<D, 1>(L, a, b, s) : attend_dg<D, 1>(L, a, b, s); break;
        case 2: fused ? attend_stream_dg<D, 2>(L, a, b, s) : attend_dg<D, 2>(L, a, b, s); break;
        case 4: fused ? attend_stream_dg<D, 4>(L, a, b, s) : attend_dg<D, 4>(L, a, b, s); break;
        default: fused ? attend_stream_dg<D, 8>(L, a, b, s) : attend_dg<D, 8>(L, a, b, s); break;
    }
}

// The stream kernels' shared memory beyond the default 48 KB, for every kernel whose
// buffers fit the device (stream_kind and fused_fits never pick one that does not).
template <int D, int G, bool MMA, int W, bool PT, bool BULK, int FZ, int ST>
void stream_opt_in() {
    if (stream_fits<D, G, MMA, W, PT, BULK, FZ, ST>())
        set_dynamic_smem(attend_stream_kernel<D, G, MMA, W, PT, BULK, FZ, ST>, stream_smem(D, W),
                         "Tactic's streaming attention kernel");
}
template <int D, bool MMA, int W, bool PT, bool BULK = false>
void stream_attrs_v() {
    stream_opt_in<D, 1, MMA, W, PT, BULK, 0, 0>();
    stream_opt_in<D, 2, MMA, W, PT, BULK, 0, 0>();
    stream_opt_in<D, 4, MMA, W, PT, BULK, 0, 0>();
    stream_opt_in<D, 8, MMA, W, PT, BULK, 0, 0>();
}
template <int D, int FZ, int ST = 0>
void fused_attrs() {
    stream_opt_in<D, 1, true, 8, true, false, FZ, ST>();
    stream_opt_in<D, 2, true, 8, true, false, FZ, ST>();
    stream_opt_in<D, 4, true, 8, true, false, FZ, ST>();
    stream_opt_in<D, 8, true, 8, true, false, FZ, ST>();
}
template <int D>
void stream_attrs() {
    stream_attrs_v<D, false, kStreamWarps, false>();
    stream_attrs_v<D, false, kStreamWarpsSmall, false>();
    if constexpr (D <= 128) stream_attrs_v<D, true, kStreamWarps, false>();
    if constexpr (D <= 128) stream_attrs_v<D, true, kStreamWarpsSmall, false>();
    if constexpr (D == 128) {
        stream_attrs_v<D, true, kStreamWarpsSmall, true>();
        stream_attrs_v<D, true, kStreamWarps, true>();
        stream_attrs_v<D, true, kStreamWarps, true, true>();
        stream_attrs_v<D, true, 8, true>();
        fused_attrs<D, 1>();
        fused_attrs<D, 2>();
        fused_attrs<D, 3>();
        fused_attrs<D, 1, 8>();  // (tactic_stream 8)
        fused_attrs<D, 2, 8>();
        fused_attrs<D, 3, 8>();
    }
}

template <int D, int G, bool MMA, int W, bool PT, bool BULK = false>
int stream_occupancy() {
    int n = 0;
    TACTIC_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, attend_stream_kernel<D, G, MMA, W, PT, BULK>, W * 32,
                                                            stream_smem(D, W)));
    return n;
}

// Blocks a multiprocessor of the attention kernel the step launches (as attend_d picks it,
// short of the fused step, which sizes its own grid).
template <int D, int G>
int occupancy() {
    int n = 0;
    if (!options().tactic_fused) {
        TACTIC_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, attend_kernel<D, G>, kWarps * 32, 0));
        return std::max(1, n);
    }
    const StreamKind k = stream_kind<D, G>();
    if constexpr (D <= 128 && G <= 8) {
        if constexpr (D == 128) {
            if (k == StreamKind::kBulk) n = stream_occupancy<D, G, true, kStreamWarps, true, true>();
            if (k == StreamKind::kWide8) n = stream_occupancy<D, G, true, 8, true>();
            if (k == StreamKind::kWide) n = stream_occupancy<D, G, true, kStreamWarps, true>();
            if (k == StreamKind::kWideSmall) n = stream_occupancy<D, G, true, kStreamWarpsSmall, true>();
        }
        if (k == StreamKind::kMma) n = stream_occupancy<D, G, true, kStreamWarps, false>();
        if (k == StreamKind::kMmaSmall) n = stream_occupancy<D, G, true, kStreamWarpsSmall, false>();
    }
    if (k == StreamKind::kFmaSmall) n = stream_occupancy<D, G, false, kStreamWarpsSmall, false>();
    if (k == StreamKind::kFma) n = stream_occupancy<D, G, false, kStreamWarps, false>();
    return std::max(1, n);
}

template <int D>
int occupancy_g(int group) {
    switch (g_of(group)) {
        case 1: return occupancy<D, 1>();
        case 2: return occupancy<D, 2>();
        case 4: return occupancy<D, 4>();
        default: return occupancy<D, 8>();
    }
}

}  // namespace

TACTIC_TRACE_EXPORT(step_trace_fused)

int tactic_fused_slices(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b) {
    const int v = options().tactic_select;
    if ((v != 9 && v != 10) || L.head_dim != 128 || !use_mma<128>() || !options().tactic_fused ||
        !options().tactic_group_budget || a.force_fraction <= 0.f || !b.rows || !b.sel_ws || !b.spart)
        return 0;
    // Eight warps' stage buffers (204 KB) and the cut's shared memory (G = 8 holds the most):
    // only sm_90's 227 KB a block holds them; elsewhere the selection kernels run instead.
    static const bool fits = stream_fits<128, 8, true, 8, true, false, 1>() && stream_fits<128, 8, true, 8, true, false, 2>() &&
                             stream_fits<128, 8, true, 8, true, false, 3>() && stream_fits<128, 8, true, 8, true, false, 1, 8>() &&
                             stream_fits<128, 8, true, 8, true, false, 2, 8>() && stream_fits<128, 8, true, 8, true, false, 3, 8>();
    if (!fits) return 0;
    // every block resident at once (the barriers), 1 a multiprocessor (the stream buffers)
    static int occ = 0;
    if (occ == 0) {
        tactic_init_kernels();
        TACTIC_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, attend_stream_kernel<128, 8, true, 8, true, false, 2>,
                                                                256, stream_smem(128, 8)));
    }
    const int Hkv = L.n_head_kv;
    const int nsl = std::min({kSpMaxSlices, occ * sm_count() / Hkv, b.n_blocks / Hkv});
    const int per = v == 9 ? 2 * kSpPer : kSpPer;  // 9: up to 4 clusters a thread (FZ 3)
    return nsl >= 1 && int64_t(nsl) * per >= L.cmax ? nsl : 0;
}

int tactic_attn_blocks(int head_dim, int group) {
    tactic_init_kernels();  // the stream kernels' shared memory, before asking how many fit
    const int occ = head_dim == 64 ? occupancy_g<64>(group) : head_dim == 128 ? occupancy_g<128>(group)
                                                                               : occupancy_g<256>(group);
    return occ * sm_count();
}

void tactic_init_kernels() {
    tactic_select_init();
    stream_attrs<64>();
    stream_attrs<128>();
    stream_attrs<256>();
}

void tactic_attend_dev(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    switch (L.head_dim) {
        case 64: attend_d<64>(L, a, b, s); break;
        case 128: attend_d<128>(L, a, b, s); break;
        default: attend_d<256>(L, a, b, s); break;
    }
}

void tactic_merge_dev(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    if (options().tactic_fused) return;  // the stream kernel merged already
    launch_pdl(merge_kernel, dim3(unsigned(L.n_head)), dim3(kMergeThreads), 0, s, L,
               static_cast<const int32_t *>(b.count), static_cast<const float *>(b.part_acc),
               static_cast<const float *>(b.part_ml), b.n_blocks, a.out, tail_lse(L, a, b));
}

void tactic_step_dev(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    tactic_score_dev(L, a, b, s);
    tactic_select_dev(L, a, b, s);
    tactic_union_dev(L, a, b, s);
    tactic_tail_dev(L, a, b, s);
    tactic_attend_dev(L, a, b, s);
    tactic_merge_dev(L, a, b, s);
    tactic_tail_merge_dev(L, a, b, s);
}

void tactic_pack_dev(const __half *k_cache, const __half *v_cache, int n_head_kv, int n_ctx, int D,
                     const int32_t *order, int cap, int len, __half *ks, __half *vs, cudaStream_t s) {
    if (len <= 0) return;
    const int64_t n = int64_t(len) * (D / 8);
    dim3 grid(unsigned((n + 255) / 256), unsigned(n_head_kv));
    pack_kernel<<<grid, 256, 0, s>>>(k_cache, v_cache, n_ctx, D, order, cap, len, ks, vs);
}

// ---- host-in / host-out harness (tests and benchmarks) ------------------------------

namespace {

// One copy of a layer's device data (benchmarks rotate several, so that repeats read
// device memory, not the L2 cache, as a real step after 31 other layers would).
struct LayerCopy {
    DevBuf kc, vc, ks, vs, cent, vmean, coff, ncl, range;
    LayerCopy(size_t kv, size_t sorted, size_t cent_b, size_t coff_b, size_t ncl_b)
        : kc(kv), vc(kv), ks(sorted), vs(sorted), cent(cent_b), vmean(cent_b), coff(coff_b), ncl(ncl_b),
          range(2 * sizeof(int32_t)) {}
};

void copy_d2d(DevBuf &dst, const DevBuf &src) {
    if (src.size()) TACTIC_CU(cudaMemcpy(dst.as<void>(), src.as<void>(), src.size(), cudaMemcpyDeviceToDevice));
}

}  // namespace

void tactic_step_host(const TacticStepHost &in) {
    require_device();
    TACTIC_CHECK(in.cmax <= tactic_max_clusters(), TACTIC_ERR_UNSUPPORTED,
                 "tactic_step: at most " + std::to_string(tactic_max_clusters()) + " clusters per KV head");
    tactic_init_kernels();
    const int D = in.head_dim, Hkv = in.n_head_kv, H = in.n_head, group = H / Hkv;
    const int len = in.c_end - in.c_begin, cap = std::max(1, len), cmax = std::max(1, in.cmax);
    const size_t kv_b = sizeof(__half) * size_t(Hkv) * in.n_ctx * D;
    const size_t sorted_b = sizeof(__half) * size_t(Hkv) * cap * D;
    const size_t cent_b = sizeof(__half) * size_t(Hkv) * cmax * D;
    const size_t coff_b = sizeof(int32_t) * size_t(Hkv) * (cmax + 1), ncl_b = sizeof(int32_t) * size_t(Hkv);
    const size_t per_copy = 2 * kv_b + 2 * sorted_b + 2 * cent_b + coff_b;
    int copies = 1;
    if (options().bench_iters > 0 && options().tactic_copies > 0) {
        copies = options().tactic_copies;
    } else if (options().bench_iters > 0) {
        size_t free_b = 0, total_b = 0;
        TACTIC_CU(cudaMemGetInfo(&free_b, &total_b));
        const size_t want = (size_t(256) << 20) / std::max<size_t>(1, cent_b) + 1;
        const size_t fit = std::max<size_t>(1, free_b / 2 / per_copy);
        copies = int(std::min<size_t>({want, fit, 32}));
    }
    std::vector<LayerCopy> lc;
    lc.reserve(size_t(copies));
    for (int i = 0; i < copies; i++) lc.emplace_back(kv_b, sorted_b, cent_b, coff_b, ncl_b);

    cudaStream_t st = nullptr;
    TACTIC_CU(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    struct StreamGuard {
        cudaStream_t s;
        ~StreamGuard() { cudaStreamDestroy(s); }
    } guard_st{st};

    // Copy 0 from the host, packed on the device; the others copied from it.
    LayerCopy &c0 = lc[0];
    c0.kc.upload(in.k, kv_b);
    c0.vc.upload(in.v, kv_b);
    std::vector<int32_t> order_pad(size_t(Hkv) * cap, 0), coff_h(size_t(Hkv) * (cmax + 1), 0);
    for (int g = 0; g < Hkv; g++) {
        for (int o = 0; o < len; o++) order_pad[size_t(g) * cap + o] = in.order[size_t(g) * len + o];
        for (int c = 0; c <= in.cmax; c++) coff_h[size_t(g) * (cmax + 1) + c] = in.offsets[size_t(g) * (in.cmax + 1) + c];
    }
    DevBuf d_order(sizeof(int32_t) * order_pad.size()), d_cent32(sizeof(float) * size_t(Hkv) * cmax * D);
    d_order.upload(order_pad.data(), d_order.size());
    TACTIC_CU(cudaMemset(d_cent32.as<void>(), 0, d_cent32.size()));
    for (int g = 0; g < Hkv; g++)
        if (in.cmax > 0)
            TACTIC_CU(cudaMemcpy(d_cent32.as<float>() + size_t(g) * cmax * D, in.centroids + size_t(g) * in.cmax * D,
                                 sizeof(float) * size_t(in.cmax) * D, cudaMemcpyHostToDevice));
    // st is non-blocking: nothing orders it after the legacy stream's copies and memset, and a
    // pageable cudaMemcpy may return before its DMA lands (K, V, order, centroids read below).
    TACTIC_CU(cudaDeviceSynchronize());
    to_f16_dev(d_cent32.as<float>(), int64_t(Hkv) * cmax * D, c0.cent.as<__half>(), st);
    tactic_pack_dev(c0.kc.as<__half>(), c0.vc.as<__half>(), Hkv, in.n_ctx, D, d_order.as<int32_t>(), cap, len,
                    c0.ks.as<__half>(), c0.vs.as<__half>(), st);
    TACTIC_CU(cudaStreamSynchronize(st));
    check_launch("tactic pack");
    c0.coff.upload(coff_h.data(), coff_b);
    c0.ncl.upload(in.n_clusters, ncl_b);
    TACTIC_CU(cudaDeviceSynchronize());  // the uploads (legacy stream) before st reads them
    tactic_value_means_dev(c0.vs.as<__half>(), c0.coff.as<int32_t>(), Hkv, cap, cmax, D, 0, cmax, c0.vmean.as<__half>(), st);
    TACTIC_CU(cudaStreamSynchronize(st));
    const int32_t range_h[2] = {in.c_begin, in.c_end};
    c0.range.upload(range_h, sizeof(range_h));
    for (int i = 1; i < copies; i++) {
        LayerCopy &c = lc[size_t(i)];
        copy_d2d(c.kc, c0.kc);
        copy_d2d(c.vc, c0.vc);
        copy_d2d(c.ks, c0.ks);
        copy_d2d(c.vs, c0.vs);
        copy_d2d(c.cent, c0.cent);
        copy_d2d(c.vmean, c0.vmean);
        copy_d2d(c.coff, c0.coff);
        copy_d2d(c.ncl, c0.ncl);
        copy_d2d(c.range, c0.range);
    }

    std::vector<TacticLayerDev> layers(static_cast<size_t>(copies));
    for (int i = 0; i < copies; i++) {
        TacticLayerDev &L = layers[size_t(i)];
        LayerCopy &c = lc[size_t(i)];
        L.k_cache = c.kc.as<__half>();
        L.v_cache = c.vc.as<__half>();
        L.ks = c.ks.as<__half>();
        L.vs = c.vs.as<__half>();
        L.cent = c.cent.as<__half>();
        L.vmean = c.vmean.as<__half>();
        L.coff = c.coff.as<int32_t>();
        L.n_clusters = c.ncl.as<int32_t>();
        L.range = c.range.as<int32_t>();
        L.n_head = H;
        L.n_head_kv = Hkv;
        L.head_dim = D;
        L.n_ctx = in.n_ctx;
        L.cap = cap;
        L.cmax = cmax;
    }

    TacticStepBufs bufs;
    bufs.n_blocks = options().tactic_blocks > 0 ? options().tactic_blocks : tactic_attn_blocks(D, group);
    DevBuf d_cscore(sizeof(float) * size_t(H) * cmax), d_hsel(size_t(H) * cmax);
    DevBuf d_list(sizeof(int32_t) * size_t(Hkv) * in.n_ctx), d_count(sizeof(int32_t) * size_t(Hkv));
    DevBuf d_rows(sizeof(int32_t) * size_t(Hkv) * in.n_ctx);
    DevBuf d_pacc(sizeof(float) * size_t(bufs.n_blocks) * H * D), d_pml(sizeof(float) * size_t(bufs.n_blocks) * H * 2);
    DevBuf d_q(sizeof(float) * size_t(H) * D), d_out(sizeof(float) * size_t(H) * D), d_pos(sizeof(int32_t));
    DevBuf d_done(sizeof(int32_t) * size_t(Hkv)), d_sel_ws(tactic_select_ws_bytes(H, Hkv));
    TACTIC_CU(cudaMemset(d_done.as<void>(), 0, d_done.size()));
    TACTIC_CU(cudaMemset(d_sel_ws.as<void>(), 0, d_sel_ws.size()));
    bufs.done = d_done.as<int32_t>();
    bufs.sel_ws = d_sel_ws.as<int32_t>();
    DevBuf d_spart(tactic_score_parts_bytes(H, cmax));
    bufs.spart = d_spart.as<float>();
    bufs.cscore = d_cscore.as<float>();
    bufs.hsel = d_hsel.as<uint8_t>();
    bufs.list = d_list.as<int32_t>();
    bufs.rows = d_rows.as<int32_t>();
    bufs.count = d_count.as<int32_t>();
    bufs.part_acc = d_pacc.as<float>();
    bufs.part_ml = d_pml.as<float>();
    DevBuf d_tail(tactic_tail_bytes(H, D));
    d_tail.poison();  // rows no block wrote must never be read
    tactic_tail_bufs(d_tail.as<float>(), H, D, bufs);
    TACTIC_CU(cudaDeviceSynchronize());  // the poisoning (legacy stream) before st's kernels
    d_q.upload(in.q, d_q.size());
    const int32_t pos = in.n_tokens - 1;
    d_pos.upload(&pos, sizeof(pos));
    d_out.poison();
    d_pacc.poison();  // rows no block wrote must never be read
    TACTIC_CU(cudaDeviceSynchronize());  // q, pos and the poisoning (legacy stream) before st's graph
    TacticStepArgs args;
    args.q = d_q.as<float>();
    args.d_pos = d_pos.as<int32_t>();
    args.scale = in.scale;
    args.force_fraction = in.force_fraction;
    args.p = in.p;
    args.out = d_out.as<float>();

    // A graph of `stage` (kStages: 0 score, 1 select, 2 union, 3 attend, 4 merge, 5 all) over every copy.
    constexpr int kStages = 6;
    auto enqueue = [&](int stage, int i, cudaStream_t s) {
        const TacticLayerDev &L = layers[size_t(i)];
        if (stage == 0) tactic_score_dev(L, args, bufs, s);
        else if (stage == 1) tactic_select_dev(L, args, bufs, s);
        else if (stage == 2) tactic_union_dev(L, args, bufs, s);
        else if (stage == 3) tactic_attend_dev(L, args, bufs, s);
        else if (stage == 4) tactic_merge_dev(L, args, bufs, s);
        else tactic_step_dev(L, args, bufs, s);
    };
    auto capture = [&](int stage, int n_copies) {
        TACTIC_CU(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
        for (int i = 0; i < n_copies; i++) enqueue(stage, i, st);
        cudaGraph_t g = nullptr;
        TACTIC_CU(cudaStreamEndCapture(st, &g));
        cudaGraphExec_t exec = nullptr;
        const cudaError_t e = cudaGraphInstantiate(&exec, g, 0);
        cudaGraphDestroy(g);
        TACTIC_CU(e);
        return exec;
    };

    // The result: the whole step replayed from a graph (as the decode graph will), twice,
    // the output poisoned in between: the second replay's must be whole again (the
    // attention's per-KV-head counters are back to zero after a step).
    {
        cudaGraphExec_t exec = capture(kStages - 1, 1);
        cudaError_t e = cudaGraphLaunch(exec, st);
        if (e == cudaSuccess) e = cudaMemsetAsync(d_out.as<void>(), 0xff, d_out.size(), st);
        if (e == cudaSuccess) e = cudaGraphLaunch(exec, st);
        const cudaError_t e2 = cudaStreamSynchronize(st);
        cudaGraphExecDestroy(exec);
        TACTIC_CU(e);
        TACTIC_CU(e2);
        check_launch("tactic step");
    }
    d_out.download(in.out, sizeof(float) * size_t(H) * D);
    std::vector<int32_t> counts(static_cast<size_t>(Hkv));
    d_count.download(counts.data(), sizeof(int32_t) * size_t(Hkv));
    std::vector<int32_t> lst(static_cast<size_t>(Hkv) * in.n_ctx);
    d_list.download(lst.data(), d_list.size());
    for (int g = 0; g < Hkv; g++) {
        in.n_selected[g] = counts[size_t(g)];
        for (int j = 0; j < counts[size_t(g)]; j++) {
            const int32_t code = lst[size_t(g) * in.n_ctx + j];
            in.selected[size_t(g) * in.n_tokens + j] = code < 0 ? -1 - code : in.order[size_t(g) * len + code];
        }
    }

    if (options().bench_iters <= 0 || !in.stage_ms) return;
    for (int stage = 0; stage < kStages; stage++) {
        in.stage_ms[stage] = 0.0;
        if (stage == 4 && options().tactic_fused) continue;  // merged inside the attention: nothing to time
        bench_in_graph([&](int i, cudaStream_t s) { enqueue(stage, i, s); }, copies);
        in.stage_ms[stage] = last_ms();
    }
    in.stage_ms[kStages] = copies;
}

}  // namespace cuda
}  // namespace tactic
