// The output estimate of the clusters a KV group does not attend (options().tactic_tail,
// mass target only), the GPU form of the CPU's tail_estimate.h: per unattended cluster c
// of a KV head, query head h's weight W_hc = |c| exp(scale q_h . centroid_c) (the centroid
// proxy; the GPU selection scores no token of an unattended cluster, so there is no exact
// part) times the cluster's mean value row vbar_c, merged into the softmax as more partials:
//   out_h = (sum_S w v + sum_c W_hc vbar_c) / (sum_S w + sum_c W_hc).
// Two short kernels, no counters or state shared across blocks or steps:
// - tail_kernel, between the selection and the attention: one block per (chunk of
//   clusters, KV head), each writing its own partial (m, l, acc) per query head;
// - tail_merge_kernel, after the attention: one block per query head adds those partials
//   to the attention's normalised output and its log-sum-exp (TacticStepBufs::lse).
// vbar_c is computed once per cluster when it is clustered (tactic_value_means_dev).
#include <cuda_fp16.h>

#include <algorithm>

#include "pdl.cuh"
#include "tactic_kernels.cuh"

namespace tactic {
namespace cuda {

namespace {

constexpr int kTailThreads = 128;
constexpr int kTailChunks = 32;  // partials a query head at most (TacticStepBufs::tail_acc rows)
constexpr int kTailPer = 512;    // clusters a block at most: tactic_max_clusters() / kTailChunks

// Chunks of clusters a KV head (blocks of tail_kernel): enough blocks to read the value
// means in parallel, at most kTailChunks (the partials tail_merge_kernel reads).
int tail_chunks(int cmax) { return std::max(1, std::min(kTailChunks, (cmax + 63) / 64)); }

__global__ void value_means_kernel(const __half *__restrict__ vs, const int32_t *__restrict__ coff, int cap, int cmax,
                                   int D, int c_from, __half *__restrict__ vmean) {
    const int g = blockIdx.y, c = c_from + blockIdx.x;
    const int32_t *off = coff + int64_t(g) * (cmax + 1);
    const int r0 = off[c], r1 = off[c + 1];
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float s = 0.f;
        for (int r = r0; r < r1; r++) s += __half2float(vs[(int64_t(g) * cap + r) * D + d]);
        vmean[(int64_t(g) * cmax + c) * D + d] = __float2half(r1 > r0 ? s / float(r1 - r0) : 0.f);
    }
}

// Block (ch, kvh): clusters [c_lo, c_hi) of the KV head, ceil(C / chunks) each. Every
// block calls pdl_wait (the hsel flags and scores come from the selection and scoring).
template <int D, int G>
__global__ void __launch_bounds__(kTailThreads) tail_kernel(TacticLayerDev L, const float *__restrict__ cscore,
                                                            const uint8_t *__restrict__ hsel, float scale,
                                                            float *__restrict__ tacc, float *__restrict__ tml) {
    constexpr int NW = kTailThreads / 32, VPL = D / 32;  // halves of a row a lane
    static_assert(VPL % 2 == 0, "head_dim a multiple of 64");
    const int kvh = blockIdx.y, ch = blockIdx.x, nch = gridDim.x, tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int H = L.n_head, group = H / L.n_head_kv, h0 = kvh * group;
    __shared__ float s_w[G][kTailPer];  // scores, then weights (0: attended, empty or padding head)
    __shared__ float s_m[G], s_l[G];
    __shared__ float s_acc[G][D];
    pdl_wait();
    pdl_trigger();
    const int C = L.n_clusters[kvh];
    const int per = (C + nch - 1) / nch, c_lo = min(C, ch * per), nc = min(C, c_lo + per) - c_lo;
    const int32_t *coff = L.coff + int64_t(kvh) * (L.cmax + 1);
    const uint8_t *hs = hsel + int64_t(kvh) * L.cmax * group;
    for (int i = tid; i < nc; i += kTailThreads) {
        const int c = c_lo + i;
        bool att = false;
        for (int j = 0; j < group; j++) att |= hs[int64_t(c) * group + j] != 0;
        const bool on = !att && coff[c + 1] > coff[c];
#pragma unroll
        for (int j = 0; j < G; j++) s_w[j][i] = on && j < group ? cscore[int64_t(h0 + j) * L.cmax + c] : -INFINITY;
    }
    for (int e = tid; e < G * D; e += kTailThreads) s_acc[e / D][e % D] = 0.f;
    __syncthreads();
    // Per head (warp j: heads j, j + NW): m = its largest unattended score, then the weights.
    for (int j = warp; j < G; j += NW) {
        float m = -INFINITY;
        for (int i = lane; i < nc; i += 32) m = fmaxf(m, s_w[j][i]);
        m = warp_max(m);
        float l = 0.f;
        for (int i = lane; i < nc; i += 32) {
            const float s = s_w[j][i];
            const float w = s == -INFINITY ? 0.f : float(coff[c_lo + i + 1] - coff[c_lo + i]) * expf(scale * (s - m));
            s_w[j][i] = w;
            l += w;
        }
        l = warp_sum(l);
        if (lane == 0) {
            s_m[j] = m;
            s_l[j] = l;
        }
    }
    __syncthreads();
    // acc = sum_c W_hc vbar_c: warp w takes clusters w, w + NW, ..; lane: VPL dimensions;
    // four clusters' rows loaded before any is used.
    float acc[G][VPL];
#pragma unroll
    for (int j = 0; j < G; j++)
#pragma unroll
        for (int e = 0; e < VPL; e++) acc[j][e] = 0.f;
    const __half *vm = L.vmean + (int64_t(kvh) * L.cmax + c_lo) * D + lane * VPL;
    constexpr int U = 4;
    for (int i0 = warp; i0 < nc; i0 += NW * U) {
        float2 v[U][VPL / 2];
        bool any[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int i = i0 + u * NW;
            any[u] = false;
            if (i < nc)
#pragma unroll
                for (int j = 0; j < G; j++) any[u] |= s_w[j][i] != 0.f;
#pragma unroll
            for (int e = 0; e < VPL / 2; e++)
                v[u][e] = any[u] ? __half22float2(reinterpret_cast<const __half2 *>(vm + int64_t(i) * D)[e])
                                 : make_float2(0.f, 0.f);
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            if (!any[u]) continue;  // warp-uniform
            const int i = i0 + u * NW;
#pragma unroll
            for (int j = 0; j < G; j++) {
                const float w = s_w[j][i];
#pragma unroll
                for (int e = 0; e < VPL / 2; e++) {
                    acc[j][2 * e] = fmaf(w, v[u][e].x, acc[j][2 * e]);
                    acc[j][2 * e + 1] = fmaf(w, v[u][e].y, acc[j][2 * e + 1]);
                }
            }
        }
    }
    // The warps' sums added in a fixed order (deterministic).
    for (int w = 0; w < NW; w++) {
        if (warp == w)
#pragma unroll
            for (int j = 0; j < G; j++)
#pragma unroll
                for (int e = 0; e < VPL; e++) s_acc[j][lane * VPL + e] += acc[j][e];
        __syncthreads();
    }
    for (int e = tid; e < group * D; e += kTailThreads) {
        const int h = e / D, d = e % D;
        const int64_t row = int64_t(ch) * H + h0 + h;
        tacc[row * D + d] = s_acc[h][d];
        if (d == 0) {
            tml[row * 2] = s_m[h] == -INFINITY ? -INFINITY : scale * s_m[h];
            tml[row * 2 + 1] = s_l[h];
        }
    }
}

// Block h, thread d: the attention's result (out_h, lse_h) as the partial (lse_h, 1, out_h),
// merged with the estimate's nch partials of head h.
__global__ void tail_merge_kernel(const float *__restrict__ tacc, const float *__restrict__ tml,
                                  const float *__restrict__ lse, int H, int D, int nch, float *__restrict__ out) {
    const int h = blockIdx.x;
    pdl_wait();
    pdl_trigger();
    const float m0 = lse[h];
    float M = m0;
    for (int ch = 0; ch < nch; ch++) M = fmaxf(M, tml[(int64_t(ch) * H + h) * 2]);
    if (M == -INFINITY) return;  // neither attended nor estimated mass: out stays as written
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        const float f0 = m0 == -INFINITY ? 0.f : expf(m0 - M);
        float S = f0, A = f0 == 0.f ? 0.f : f0 * out[int64_t(h) * D + d];
        for (int ch = 0; ch < nch; ch++) {
            const int64_t row = int64_t(ch) * H + h;
            const float m = tml[row * 2];
            if (m == -INFINITY) continue;
            const float f = expf(m - M);
            S = fmaf(f, tml[row * 2 + 1], S);
            A = fmaf(f, tacc[row * D + d], A);
        }
        out[int64_t(h) * D + d] = S > 0.f ? A / S : 0.f;
    }
}

template <int D, int G>
void launch_tail(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    launch_pdl(tail_kernel<D, G>, dim3(unsigned(tail_chunks(L.cmax)), unsigned(L.n_head_kv)), dim3(kTailThreads), 0,
               s, L, static_cast<const float *>(b.cscore), static_cast<const uint8_t *>(b.hsel), a.scale, b.tail_acc,
               b.tail_ml);
}

template <int D>
void tail_d(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    switch (g_of(L.n_head / L.n_head_kv)) {
        case 1: launch_tail<D, 1>(L, a, b, s); break;
        case 2: launch_tail<D, 2>(L, a, b, s); break;
        case 4: launch_tail<D, 4>(L, a, b, s); break;
        default: launch_tail<D, 8>(L, a, b, s); break;
    }
}

}  // namespace

bool tactic_tail_on(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b) {
    return options().tactic_tail != 0 && a.force_fraction <= 0.f && L.vmean && b.tail_acc && b.tail_ml && b.lse &&
           b.hsel;
}

size_t tactic_tail_bytes(int n_head, int head_dim) {
    return sizeof(float) * (size_t(kTailChunks) * n_head * (head_dim + 2) + size_t(n_head));
}

void tactic_tail_bufs(float *base, int n_head, int head_dim, TacticStepBufs &b) {
    static_assert(kTailChunks * kTailPer >= 16384, "a block's clusters fit s_w (tactic_max_clusters)");
    b.tail_acc = base;
    b.tail_ml = base + size_t(kTailChunks) * n_head * head_dim;
    b.lse = b.tail_ml + size_t(kTailChunks) * n_head * 2;
}

void tactic_tail_dev(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    if (!tactic_tail_on(L, a, b)) return;
    switch (L.head_dim) {
        case 64: tail_d<64>(L, a, b, s); break;
        case 128: tail_d<128>(L, a, b, s); break;
        default: tail_d<256>(L, a, b, s); break;
    }
}

void tactic_tail_merge_dev(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    if (!tactic_tail_on(L, a, b)) return;
    launch_pdl(tail_merge_kernel, dim3(unsigned(L.n_head)), dim3(unsigned(std::min(L.head_dim, 256))), 0, s,
               static_cast<const float *>(b.tail_acc), static_cast<const float *>(b.tail_ml),
               static_cast<const float *>(b.lse), L.n_head, L.head_dim, tail_chunks(L.cmax), a.out);
}

void tactic_value_means_dev(const __half *vs, const int32_t *coff, int n_head_kv, int cap, int cmax, int D, int c_from,
                            int c_to, __half *vmean, cudaStream_t s) {
    if (c_to <= c_from) return;
    value_means_kernel<<<dim3(unsigned(c_to - c_from), unsigned(n_head_kv)), unsigned(std::min(D, 256)), 0, s>>>(
        vs, coff, cap, cmax, D, c_from, vmean);
    TACTIC_CU(cudaGetLastError());
}

}  // namespace cuda
}  // namespace tactic
