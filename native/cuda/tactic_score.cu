// A. Tactic's centroid scores q . c on the GPU (tactic_gpu.cuh says what each stage of
// the step does): every query head's score of every cluster of its KV head, and per
// scoring block the partials (max, mass, min) the selection reads (tactic_select 3).
#include <algorithm>
#include <cmath>

#include "cuda_ops.cuh"
#include "cuda_util.cuh"
#include "pdl.cuh"
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
    pdl_wait();
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
}

template <int D>
void score2_d(const TacticLayerDev &L, const float *q, float *cscore, float *part, float scale, cudaStream_t s) {
    const dim3 grid(unsigned(score2_blocks(D, L.cmax)), unsigned(L.n_head_kv));
    const dim3 block(kScoreWarps * 32);
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
// options().tactic_score: 2 rows before pdl_wait, 3 after, 4 on tensor cores.
template <int D>
void score_d(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    if (tactic_select_scores(L, a, b)) return;  // the selection scores (tactic_select 5)
    if (options().tactic_select == 10 && tactic_fused_slices(L, a, b) > 0) return;  // the fused step scores
    score2_d<D>(L, a.q, b.cscore, select_from_parts(b) ? b.spart : nullptr, a.scale, s);
}

}  // namespace

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
