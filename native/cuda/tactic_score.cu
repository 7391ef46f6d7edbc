// A. Tactic's centroid scores q . c on the GPU (tactic_gpu.cuh says what each stage of
// the step does): every query head's score of every cluster of its KV head, and per
// scoring block the partials (max, mass, min) the selection reads (tactic_select 3).
#include <algorithm>
#include <cmath>

#include "cuda_ops.cuh"
#include "cuda_util.cuh"
#include "pdl.cuh"
#include "step_trace.cuh"
#include "tactic_cut.cuh"
#include "tactic_gpu.cuh"
#include "tactic_kernels.cuh"

namespace tactic {
namespace cuda {

namespace {

// A, version 2 (options().tactic_score == 2): each lane's kScore2Rows centroid rows
// requested at once, before pdl_wait (the centroids are written outside the decode step:
// under PDL they stream in while the kernel before still runs); q staged in shared memory
// (not kept in registers: more blocks fit, the grid is one wave at 128K). The rows of a
// warp: TPW x kScore2Rows consecutive clusters. With part (tactic_select 3): per head the
// block's (max s, sum |c| exp(scale (s - max)), min s) of its scores s, part[h][block][3],
// so that the selection knows lse and the scores' range without a pass of its own.
// EARLY false (tactic_score 3): the rows requested after pdl_wait instead (measured: the
// early loads compete with the kernel before for HBM).
template <int D, int G, bool EARLY>
__global__ void __launch_bounds__(kScoreWarps * 32) cscore2_kernel(TacticLayerDev L, const float *__restrict__ q,
                                                                   float *__restrict__ cscore, float *__restrict__ part,
                                                                   float scale) {
    constexpr int LPT = D / 8, TPW = 32 / LPT, U = kScore2Rows;
    __shared__ float4 s_q[G][D / 4];
    const int kvh = blockIdx.y, group = L.n_head / L.n_head_kv, h0 = kvh * group;
    const int C = L.n_clusters[kvh];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, slot = lane / LPT, dl = lane % LPT;
    const int c_first = (blockIdx.x * kScoreWarps + warp) * TPW * U;
    const __half *cent = L.cent + int64_t(kvh) * L.cmax * D + dl * 8;
    uint4 w[U];
    float tk[U];  // tokens of the lane's rows (lanes dl == 0, with part)
    if (!EARLY) pdl_wait();
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int c = c_first + u * TPW + slot;
        w[u] = c < C ? __ldg(reinterpret_cast<const uint4 *>(cent + int64_t(c) * D)) : make_uint4(0, 0, 0, 0);
        const int32_t *co = L.coff + int64_t(kvh) * (L.cmax + 1) + c;
        tk[u] = part && dl == 0 && c < C ? float(__ldg(co + 1) - __ldg(co)) : 0.f;
    }
    if (EARLY) pdl_wait();
    pdl_trigger();
    for (int e = threadIdx.x; e < G * D / 4; e += kScoreWarps * 32) {
        const int h = e / (D / 4), d4 = e % (D / 4);
        s_q[h][d4] = h < group ? reinterpret_cast<const float4 *>(q + int64_t(h0 + h) * D)[d4]
                               : make_float4(0.f, 0.f, 0.f, 0.f);
    }
    __syncthreads();
    __shared__ float s_red[kScoreWarps][G][3];
#pragma unroll
    for (int h = 0; h < G; h++) {
        if (h >= group) break;
        const float4 qa = s_q[h][dl * 2], qb = s_q[h][dl * 2 + 1];
        const float qr[8] = {qa.x, qa.y, qa.z, qa.w, qb.x, qb.y, qb.z, qb.w};
        float d[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            float f[8];
            h8_to_f(w[u], f);
            d[u] = 0.f;
#pragma unroll
            for (int i = 0; i < 8; i++) d[u] = fmaf(qr[i], f[i], d[u]);
        }
#pragma unroll
        for (int u = 0; u < U; u++)
#pragma unroll
            for (int o = LPT / 2; o > 0; o >>= 1) d[u] += __shfl_xor_sync(0xffffffffu, d[u], o);
        float *dst = cscore + int64_t(h0 + h) * L.cmax;
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = c_first + u * TPW + slot;
            if (dl == 0 && c < C) dst[c] = d[u];
        }
        if (part) {  // block-uniform
            float m = -INFINITY, z = 0.f, mn = INFINITY;
#pragma unroll
            for (int u = 0; u < U; u++)
                if (dl == 0 && c_first + u * TPW + slot < C) {
                    m = fmaxf(m, d[u]);
                    mn = fminf(mn, d[u]);
                }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) {
                m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
                mn = fminf(mn, __shfl_xor_sync(0xffffffffu, mn, o));
            }
#pragma unroll
            for (int u = 0; u < U; u++)
                if (dl == 0 && c_first + u * TPW + slot < C) z += tk[u] * expf(scale * (d[u] - m));
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) z += __shfl_xor_sync(0xffffffffu, z, o);
            if (lane == 0) {
                s_red[warp][h][0] = m;
                s_red[warp][h][1] = z;
                s_red[warp][h][2] = mn;
            }
        }
    }
    if (part) {
        __syncthreads();
        if (threadIdx.x < group && threadIdx.x < G) {
            const int h = threadIdx.x;
            float m = -INFINITY, z = 0.f, mn = INFINITY;
            for (int wv = 0; wv < kScoreWarps; wv++) m = fmaxf(m, s_red[wv][h][0]);
            for (int wv = 0; wv < kScoreWarps; wv++) {
                if (s_red[wv][h][0] != -INFINITY) z += s_red[wv][h][1] * expf(scale * (s_red[wv][h][0] - m));
                mn = fminf(mn, s_red[wv][h][2]);
            }
            float *pp = part + (int64_t(h0 + h) * gridDim.x + blockIdx.x) * 3;
            pp[0] = m;
            pp[1] = z;
            pp[2] = mn;
        }
    }
}

// A, version 4 (options().tactic_score == 4): cscore2_kernel's blocks (the same clusters
// a block, so the same partials for tactic_select 3; rows after pdl_wait as in 3), the
// dot products on tensor cores. Measured why: version 3 spends its time in FMAs and
// shuffles (a reduction over D / 8 lanes for every head and row), not in the loads.
// mma.m16n8k16: A = the group's query heads (row g: q's f16 hi parts, row g + 8: the
// lo parts, as the streaming attention), B = 8 clusters (n) x 16 dims (k). The dot
// product does not care which k is which dim as long as A and B agree, so lane (g, t)
// loads 16 bytes of cluster g's row, dims 32 j + 8 t .. + 8: halves 0-3 are its B
// fragment of k-step 2 j (k 2t, 2t+1 | 2t+8, 2t+9), halves 4-7 of k-step 2 j + 1, and
// its A fragment takes q's dims in the same order. C: head g, clusters 2t, 2t+1 of the
// tile = c[j] + c[j + 2] (hi row + lo row).
// A chunk: one such block's clusters (score2_blocks counts them); version 5 runs several
// a block through the same functions, so the same scores and partials bit for bit.
template <int D> struct MmaChunk {
    static constexpr int PER = kScoreWarps * (32 / (D / 8)) * kScore2Rows;  // as cscore2_kernel (score2_blocks)
    static constexpr int TILES = PER / (kScoreWarps * 8), JC = D / 32;
    static_assert(TILES >= 1 && TILES * kScoreWarps * 8 == PER, "score tile shape");
};

// A coherent 16-byte load (ld.global without .nc): ptxas keeps it above pdl_wait where
// the source puts it, an ld.global.nc it sinks below the wait (matvec_q8.cu, matvec_wait).
__device__ __forceinline__ uint4 ld_early(const __half *p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    uint4 r;
    asm volatile("ld.global.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p)
                 : "memory");
    return r;
#else
    return __ldg(reinterpret_cast<const uint4 *>(p));
#endif
}

// Lane (g, t)'s words of its warp's tiles (first cluster c_warp). EARLY: coherent loads,
// for above pdl_wait.
template <int D, bool EARLY>
__device__ __forceinline__ void mma_load(const TacticLayerDev &L, int kvh, int C, int c_warp,
                                         uint4 (&w)[MmaChunk<D>::TILES][MmaChunk<D>::JC]) {
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const __half *cent = L.cent + int64_t(kvh) * L.cmax * D + 8 * t;
#pragma unroll
    for (int i = 0; i < MmaChunk<D>::TILES; i++) {
        const int c = c_warp + i * 8 + g;
#pragma unroll
        for (int j = 0; j < MmaChunk<D>::JC; j++) {
            const __half *p = cent + int64_t(c) * D + 32 * j;
            w[i][j] = c >= C ? make_uint4(0, 0, 0, 0) : EARLY ? ld_early(p) : __ldg(reinterpret_cast<const uint4 *>(p));
        }
    }
}

// With tok, the tokens of clusters 2t, 2t+1 of each of the warp's tiles (else zeros).
template <int D, bool EARLY>
__device__ __forceinline__ void mma_tokens(const TacticLayerDev &L, int kvh, int C, int c_warp, bool tok,
                                           float (&tk)[MmaChunk<D>::TILES][2]) {
    const int t = threadIdx.x % 4;
    const int32_t *co = L.coff + int64_t(kvh) * (L.cmax + 1);
#pragma unroll
    for (int i = 0; i < MmaChunk<D>::TILES; i++)
#pragma unroll
        for (int jj = 0; jj < 2; jj++) {
            const int cc = c_warp + i * 8 + 2 * t + jj;
            tk[i][jj] = tok && cc < C ? float((EARLY ? co[cc + 1] : __ldg(co + cc + 1)) - (EARLY ? co[cc] : __ldg(co + cc)))
                                      : 0.f;
        }
}

// The block's A fragments into s_qf[k-step][lane] (uint4: a0-a3): lane (g, t) of k-step
// 2 j + e takes query head h0 + g's dims 32 j + 8 t + 4 e .. + 4 (zeros for g >= group)
// as f16 hi + lo, as version 4's registers; read back by every warp, conflict-free.
template <int D>
__device__ __forceinline__ void mma_qfrag_smem(const float *q, int h0, int group, uint4 *s_qf) {
    for (int e = threadIdx.x; e < 2 * MmaChunk<D>::JC * 32; e += blockDim.x) {
        const int ks = e / 32, lane = e % 32, g = lane / 4, t = lane % 4, j = ks / 2, hf = ks % 2;
        const bool on = g < group;
        const float4 x = *reinterpret_cast<const float4 *>(q + int64_t(h0 + (on ? g : 0)) * D + 32 * j + 8 * t + 4 * hf);
        const float z = on ? 1.f : 0.f;
        uint4 f;
        split_f16x2(z * x.x, z * x.y, f.x, f.y);
        split_f16x2(z * x.z, z * x.w, f.z, f.w);
        s_qf[e] = f;
    }
}

// One chunk (x of nbx, KV head of h0): the scores of the warp's tiles to cscore and, with
// part, the chunk's per-head (max, mass, min) to part[h][x] (block-wide: a barrier inside).
template <int D, int G>
__device__ __forceinline__ void mma_chunk(const uint4 (&w)[MmaChunk<D>::TILES][MmaChunk<D>::JC],
                                          const float (&tk)[MmaChunk<D>::TILES][2],
                                          const uint4 *s_qf, int C, int c_warp, int h0,
                                          int group, int cmax, float *cscore, float *part, int nbx, int x, float scale,
                                          float (&s_red)[kScoreWarps][8][3]) {
    using S = MmaChunk<D>;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const bool on = g < group;
    float sc[S::TILES][2];
#pragma unroll
    for (int i = 0; i < S::TILES; i++) {
        float c[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
        for (int j = 0; j < S::JC; j++) {
            const uint4 a0 = s_qf[2 * j * 32 + lane], a1 = s_qf[(2 * j + 1) * 32 + lane];
            mma16816(c, {a0.x, a0.y, a0.z, a0.w}, w[i][j].x, w[i][j].y);
            mma16816(c, {a1.x, a1.y, a1.z, a1.w}, w[i][j].z, w[i][j].w);
        }
        sc[i][0] = c[0] + c[2];
        sc[i][1] = c[1] + c[3];
    }
    float *dst = cscore + int64_t(h0 + g) * cmax;
    float m = -INFINITY, mn = INFINITY;
#pragma unroll
    for (int i = 0; i < S::TILES; i++)
#pragma unroll
        for (int jj = 0; jj < 2; jj++) {
            const int cc = c_warp + i * 8 + 2 * t + jj;
            if (on && cc < C) {
                dst[cc] = sc[i][jj];
                m = fmaxf(m, sc[i][jj]);
                mn = fminf(mn, sc[i][jj]);
            }
        }
    if (!part) return;  // grid-uniform
#pragma unroll
    for (int o = 1; o < 4; o <<= 1) {  // over the 4 lanes of head g
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
        mn = fminf(mn, __shfl_xor_sync(0xffffffffu, mn, o));
    }
    float z = 0.f;
#pragma unroll
    for (int i = 0; i < S::TILES; i++)
#pragma unroll
        for (int jj = 0; jj < 2; jj++)
            if (on && c_warp + i * 8 + 2 * t + jj < C) z += tk[i][jj] * expf(scale * (sc[i][jj] - m));
#pragma unroll
    for (int o = 1; o < 4; o <<= 1) z += __shfl_xor_sync(0xffffffffu, z, o);
    if (t == 0) {
        s_red[warp][g][0] = m;
        s_red[warp][g][1] = z;
        s_red[warp][g][2] = mn;
    }
    __syncthreads();
    if (threadIdx.x < group && threadIdx.x < G) {
        const int h = threadIdx.x;
        float M = -INFINITY, Z = 0.f, MN = INFINITY;
        for (int wv = 0; wv < kScoreWarps; wv++) M = fmaxf(M, s_red[wv][h][0]);
        for (int wv = 0; wv < kScoreWarps; wv++) {
            if (s_red[wv][h][0] != -INFINITY) Z += s_red[wv][h][1] * expf(scale * (s_red[wv][h][0] - M));
            MN = fminf(MN, s_red[wv][h][2]);
        }
        float *pp = part + (int64_t(h0 + h) * nbx + x) * 3;
        pp[0] = M;
        pp[1] = Z;
        pp[2] = MN;
    }
}

template <int D, int G>
__global__ void __launch_bounds__(kScoreWarps * 32) cscore_mma_kernel(TacticLayerDev L, const float *__restrict__ q,
                                                                      float *__restrict__ cscore,
                                                                      float *__restrict__ part, float scale) {
    constexpr int PER_BLOCK = kScoreWarps * (32 / (D / 8)) * kScore2Rows;  // as cscore2_kernel (score2_blocks)
    constexpr int TILES = PER_BLOCK / (kScoreWarps * 8), JC = D / 32;
    static_assert(TILES >= 1 && TILES * kScoreWarps * 8 == PER_BLOCK && G <= 8, "score tile shape");
    const int kvh = blockIdx.y, group = L.n_head / L.n_head_kv, h0 = kvh * group;
    const int C = L.n_clusters[kvh];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int c_warp = blockIdx.x * PER_BLOCK + warp * TILES * 8;
    const __half *cent = L.cent + int64_t(kvh) * L.cmax * D + 8 * t;
    const int32_t *co = L.coff + int64_t(kvh) * (L.cmax + 1);
    const int tb = int(blockIdx.y * gridDim.x + blockIdx.x);  // (the trace's block)
    trace_mark(tb, 0);
    pdl_wait();
    trace_mark(tb, 1);
    uint4 w[TILES][JC];
    float tk[TILES][2];  // tokens of clusters 2t, 2t+1 of each tile (with part)
#pragma unroll
    for (int i = 0; i < TILES; i++) {
        const int c = c_warp + i * 8 + g;
#pragma unroll
        for (int j = 0; j < JC; j++)
            w[i][j] = c < C ? __ldg(reinterpret_cast<const uint4 *>(cent + int64_t(c) * D + 32 * j))
                            : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int jj = 0; jj < 2; jj++) {
            const int cc = c_warp + i * 8 + 2 * t + jj;
            tk[i][jj] = part && cc < C ? float(__ldg(co + cc + 1) - __ldg(co + cc)) : 0.f;
        }
    }
    pdl_trigger();
    const bool on = g < group;
    uint32_t qf[2 * JC][4];
    {
        const float *qg = q + int64_t(h0 + (on ? g : 0)) * D + 8 * t;
#pragma unroll
        for (int j = 0; j < JC; j++) {
            const float4 x0 = *reinterpret_cast<const float4 *>(qg + 32 * j);
            const float4 x1 = *reinterpret_cast<const float4 *>(qg + 32 * j + 4);
            const float z = on ? 1.f : 0.f;
            split_f16x2(z * x0.x, z * x0.y, qf[2 * j][0], qf[2 * j][1]);
            split_f16x2(z * x0.z, z * x0.w, qf[2 * j][2], qf[2 * j][3]);
            split_f16x2(z * x1.x, z * x1.y, qf[2 * j + 1][0], qf[2 * j + 1][1]);
            split_f16x2(z * x1.z, z * x1.w, qf[2 * j + 1][2], qf[2 * j + 1][3]);
        }
    }
    float sc[TILES][2];
#pragma unroll
    for (int i = 0; i < TILES; i++) {
        float c[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
        for (int j = 0; j < JC; j++) {
            mma16816(c, qf[2 * j], w[i][j].x, w[i][j].y);
            mma16816(c, qf[2 * j + 1], w[i][j].z, w[i][j].w);
        }
        sc[i][0] = c[0] + c[2];
        sc[i][1] = c[1] + c[3];
    }
    float *dst = cscore + int64_t(h0 + g) * L.cmax;
    float m = -INFINITY, mn = INFINITY;
#pragma unroll
    for (int i = 0; i < TILES; i++)
#pragma unroll
        for (int jj = 0; jj < 2; jj++) {
            const int cc = c_warp + i * 8 + 2 * t + jj;
            if (on && cc < C) {
                dst[cc] = sc[i][jj];
                m = fmaxf(m, sc[i][jj]);
                mn = fminf(mn, sc[i][jj]);
            }
        }
    trace_mark(tb, 2);
    if (!part) return;  // grid-uniform
    __shared__ float s_red[kScoreWarps][8][3];
#pragma unroll
    for (int o = 1; o < 4; o <<= 1) {  // over the 4 lanes of head g
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
        mn = fminf(mn, __shfl_xor_sync(0xffffffffu, mn, o));
    }
    float z = 0.f;
#pragma unroll
    for (int i = 0; i < TILES; i++)
#pragma unroll
        for (int jj = 0; jj < 2; jj++)
            if (on && c_warp + i * 8 + 2 * t + jj < C) z += tk[i][jj] * expf(scale * (sc[i][jj] - m));
#pragma unroll
    for (int o = 1; o < 4; o <<= 1) z += __shfl_xor_sync(0xffffffffu, z, o);
    if (t == 0) {
        s_red[warp][g][0] = m;
        s_red[warp][g][1] = z;
        s_red[warp][g][2] = mn;
    }
    __syncthreads();
    if (threadIdx.x < group && threadIdx.x < G) {
        const int h = threadIdx.x;
        float M = -INFINITY, Z = 0.f, MN = INFINITY;
        for (int wv = 0; wv < kScoreWarps; wv++) M = fmaxf(M, s_red[wv][h][0]);
        for (int wv = 0; wv < kScoreWarps; wv++) {
            if (s_red[wv][h][0] != -INFINITY) Z += s_red[wv][h][1] * expf(scale * (s_red[wv][h][0] - M));
            MN = fminf(MN, s_red[wv][h][2]);
        }
        float *pp = part + (int64_t(h0 + h) * gridDim.x + blockIdx.x) * 3;
        pp[0] = M;
        pp[1] = Z;
        pp[2] = MN;
    }
    trace_mark(tb, 3);
}

// A, version 5 (options().tactic_score == 5): version 4's chunks (same loads, fragments,
// k-step order and partials: the same bits) in at most one resident wave of blocks, each
// block's first chunk requested before pdl_wait. The centroids, offsets and counts are
// written outside the decode step, so under PDL they stream into registers while the
// kernel before still runs (the blocks resident beside it: one a multiprocessor beside
// the fused attention); coherent loads, which ptxas keeps above the wait. Chunk i is
// chunk i / Hkv of KV head i % Hkv (clusters-major: where cmax exceeds the clusters, the
// empty chunks spread over all blocks); block b takes b, b + grid, ... (grid a multiple
// of Hkv: one KV head a block). q's fragments go through shared memory once a block
// (version 4 reloads q per lane in four dependent rounds). Measured (H200, sc_s11.md):
// an L2 bulk prefetch of the later chunks before the wait, and two chunks a block both
// early, lost in the step.
template <int D, int G>
__global__ void __launch_bounds__(kScoreWarps * 32) __maxnreg__(D == 128 ? 64 : 80)
    cscore5_kernel(TacticLayerDev L, const float *__restrict__ q, float *__restrict__ cscore,
                   float *__restrict__ part, float scale, int nbx) {
    using S = MmaChunk<D>;
    static_assert(G <= 8, "score tile shape");
    const int Hkv = L.n_head_kv, group = L.n_head / Hkv, n_chunks = nbx * Hkv;
    const int kvh = int(blockIdx.x) % Hkv, h0 = kvh * group, C = L.n_clusters[kvh];
    const int warp = threadIdx.x / 32;
    const bool tok = part != nullptr;  // (the tokens weigh the partials' mass)
    auto c_warp = [&](int i) { return i / Hkv * S::PER + warp * S::TILES * 8; };
    uint4 w[S::TILES][S::JC];
    float tk[S::TILES][2];
    mma_load<D, true>(L, kvh, C, c_warp(blockIdx.x), w);  // (grid <= n_chunks)
    mma_tokens<D, true>(L, kvh, C, c_warp(blockIdx.x), tok, tk);
    trace_mark(blockIdx.x, 0);
    pdl_wait();
    trace_mark(blockIdx.x, 1);
    pdl_trigger();
    __shared__ uint4 s_qf[2 * S::JC * 32];
    mma_qfrag_smem<D>(q, h0, group, s_qf);
    __syncthreads();
    __shared__ float s_red[2][kScoreWarps][8][3];  // alternating: no barrier before the next chunk's writes
    for (int i = blockIdx.x, k = 0; i < n_chunks; i += gridDim.x, k++) {
        if (k > 0) {
            mma_load<D, false>(L, kvh, C, c_warp(i), w);
            mma_tokens<D, false>(L, kvh, C, c_warp(i), tok, tk);
        }
        mma_chunk<D, G>(w, tk, s_qf, C, c_warp(i), h0, group, L.cmax, cscore, part, nbx, i / Hkv, scale, s_red[k & 1]);
    }
    trace_mark(blockIdx.x, 3);
}

// Version 5's grid: the chunks, at most one resident wave (or tactic_score_blocks), a
// multiple of n_head_kv.
template <int D, int G>
void score5_launch(const TacticLayerDev &L, const float *q, float *cscore, float *part, float scale, cudaStream_t s) {
    static const int occ = [] {
        int n = 0;
        TACTIC_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, cscore5_kernel<D, G>, kScoreWarps * 32, 0));
        return std::max(1, n);
    }();
    const int Hkv = L.n_head_kv, nbx = score2_blocks(D, L.cmax);
    const int cap = options().tactic_score_blocks > 0 ? options().tactic_score_blocks : occ * sm_count();
    const int grid = std::min(nbx * Hkv, std::max(1, cap / Hkv) * Hkv);
    launch_pdl(cscore5_kernel<D, G>, dim3(unsigned(grid)), dim3(kScoreWarps * 32), 0, s, L, q, cscore, part, scale, nbx);
}

template <int D>
void score2_d(const TacticLayerDev &L, const float *q, float *cscore, float *part, float scale, cudaStream_t s) {
    const dim3 grid(unsigned(score2_blocks(D, L.cmax)), unsigned(L.n_head_kv));
    const dim3 block(kScoreWarps * 32);
    if (options().tactic_score == 5) {
        switch (g_of(L.n_head / L.n_head_kv)) {
            case 1: score5_launch<D, 1>(L, q, cscore, part, scale, s); break;
            case 2: score5_launch<D, 2>(L, q, cscore, part, scale, s); break;
            case 4: score5_launch<D, 4>(L, q, cscore, part, scale, s); break;
            default: score5_launch<D, 8>(L, q, cscore, part, scale, s); break;
        }
        return;
    }
    if (options().tactic_score == 4) {
        switch (g_of(L.n_head / L.n_head_kv)) {
            case 1: launch_pdl(cscore_mma_kernel<D, 1>, grid, block, 0, s, L, q, cscore, part, scale); break;
            case 2: launch_pdl(cscore_mma_kernel<D, 2>, grid, block, 0, s, L, q, cscore, part, scale); break;
            case 4: launch_pdl(cscore_mma_kernel<D, 4>, grid, block, 0, s, L, q, cscore, part, scale); break;
            default: launch_pdl(cscore_mma_kernel<D, 8>, grid, block, 0, s, L, q, cscore, part, scale); break;
        }
        return;
    }
    if (options().tactic_score == 3) {
        switch (g_of(L.n_head / L.n_head_kv)) {
            case 1: launch_pdl(cscore2_kernel<D, 1, false>, grid, block, 0, s, L, q, cscore, part, scale); break;
            case 2: launch_pdl(cscore2_kernel<D, 2, false>, grid, block, 0, s, L, q, cscore, part, scale); break;
            case 4: launch_pdl(cscore2_kernel<D, 4, false>, grid, block, 0, s, L, q, cscore, part, scale); break;
            default: launch_pdl(cscore2_kernel<D, 8, false>, grid, block, 0, s, L, q, cscore, part, scale); break;
        }
        return;
    }
    switch (g_of(L.n_head / L.n_head_kv)) {
        case 1: launch_pdl(cscore2_kernel<D, 1, true>, grid, block, 0, s, L, q, cscore, part, scale); break;
        case 2: launch_pdl(cscore2_kernel<D, 2, true>, grid, block, 0, s, L, q, cscore, part, scale); break;
        case 4: launch_pdl(cscore2_kernel<D, 4, true>, grid, block, 0, s, L, q, cscore, part, scale); break;
        default: launch_pdl(cscore2_kernel<D, 8, true>, grid, block, 0, s, L, q, cscore, part, scale); break;
    }
}


// The scores, with the partials where the selection reads them (select_from_parts); the kernel by
// options().tactic_score: 2 rows before pdl_wait, 3 after, 4 on tensor cores, 5 that in one early
// wave.
template <int D>
void score_d(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    if (tactic_select_scores(L, a, b)) return;  // the selection scores (tactic_select 5)
    if (options().tactic_select == 10 && tactic_fused_slices(L, a, b) > 0) return;  // the fused step scores
    score2_d<D>(L, a.q, b.cscore, select_from_parts(b) ? b.spart : nullptr, a.scale, s);
}

}  // namespace

TACTIC_TRACE_EXPORT(step_trace_score)

void tactic_score_dev(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    switch (L.head_dim) {
        case 64: score_d<64>(L, a, b, s); break;
        case 128: score_d<128>(L, a, b, s); break;
        default: score_d<256>(L, a, b, s); break;
    }
}

size_t tactic_score_parts_bytes(int n_head, int cmax) {
    // the most blocks: the scoring kernels' or the fused step's slices (tactic_select 10)
    return sizeof(float) * 3 * size_t(n_head) * size_t(std::max(score2_blocks(256, std::max(1, cmax)), kSpMaxSlices));
}

}  // namespace cuda
}  // namespace tactic
