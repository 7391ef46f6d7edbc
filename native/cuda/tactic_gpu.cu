// Tactic's decode step for one global layer on the GPU (tactic_gpu.cuh says what each
// stage does; docs/TACTIC.md, "On the GPU", why). Sizes that change from step to step
// (tokens cached, clusters per KV head, selected rows) live in device memory, so the
// step is a fixed sequence of five kernels: capturable in a CUDA graph.
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "bulk_copy.cuh"
#include "cuda_ops.cuh"
#include "cuda_util.cuh"
#include "pdl.cuh"
#include "tactic_gpu.cuh"
#include "tactic_gpu.h"

namespace tactic {
namespace cuda {

namespace {

constexpr int kWarps = 4;        // attention block: 4 warps
constexpr int kTile = 32;        // list positions per warp and round
constexpr int kScoreWarps = 8;   // centroid scoring block
constexpr int kScoreUnroll = 4;  // centroid rows in flight per lane
constexpr int kSelThreads = 1024;
constexpr int kMinPerBlock = 64;  // attention: fewest list entries worth a block
constexpr int kInFlight = 8;      // attention: K or V rows loaded per lane before use

__device__ __forceinline__ void h8_to_f(const uint4 &w, float *f) {
    const uint32_t ws[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 t = __half22float2(*reinterpret_cast<const __half2 *>(&ws[i]));
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}

// A. cscore[h][c] = q_h . centroid_c for the query heads of each KV head (grid.y), the
// centroids read once for the group. A row of D halves is read by D/8 lanes.
template <int D, int G>
__global__ void __launch_bounds__(kScoreWarps * 32) cscore_kernel(TacticLayerDev L, const float *__restrict__ q,
                                                                  float *__restrict__ cscore) {
    constexpr int LPT = D / 8, TPW = 32 / LPT;
    const int kvh = blockIdx.y, group = L.n_head / L.n_head_kv, h0 = kvh * group;
    const int C = L.n_clusters[kvh];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, slot = lane / LPT, dl = lane % LPT;
    const int c_first = (blockIdx.x * kScoreWarps + warp) * TPW * kScoreUnroll;
    if (c_first >= C) return;  // warp-uniform
    float qr[G][8];
#pragma unroll
    for (int h = 0; h < G; h++)
#pragma unroll
        for (int i = 0; i < 8; i++) qr[h][i] = h < group ? q[int64_t(h0 + h) * D + dl * 8 + i] : 0.f;
    const __half *cent = L.cent + int64_t(kvh) * L.cmax * D + dl * 8;
    uint4 w[kScoreUnroll];
#pragma unroll
    for (int u = 0; u < kScoreUnroll; u++) {
        const int c = c_first + u * TPW + slot;
        w[u] = c < C ? *reinterpret_cast<const uint4 *>(cent + int64_t(c) * D) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kScoreUnroll; u++) {
        const int c = c_first + u * TPW + slot;
        float f[8];
        h8_to_f(w[u], f);
#pragma unroll
        for (int h = 0; h < G; h++) {
            float d = 0.f;
#pragma unroll
            for (int i = 0; i < 8; i++) d = fmaf(qr[h][i], f[i], d);
#pragma unroll
            for (int o = LPT / 2; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
            if (dl == 0 && c < C && h < group) cscore[int64_t(h0 + h) * L.cmax + c] = d;
        }
    }
}

// A, version 2 (options().tactic_score == 2): each lane's kScore2Rows centroid rows
// requested at once, before pdl_wait (the centroids are written outside the decode step:
// under PDL they stream in while the kernel before still runs); q staged in shared memory
// (not kept in registers: more blocks fit, the grid is one wave at 128K). The rows of a
// warp: TPW x kScore2Rows consecutive clusters. With part (tactic_select 3): per head the
// block's (max s, sum |c| exp(scale (s - max)), min s) of its scores s, part[h][block][3],
// so that the selection knows lse and the scores' range without a pass of its own.
// EARLY false (tactic_score 3): the rows requested after pdl_wait instead (measured: the
// early loads compete with the kernel before for HBM).
constexpr int kScore2Rows = 8;
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

// The cut's keys: scores (or log weights) spread linearly over [lo, hi] of the block's
// values, as unsigned integers of the same order (ties only closer than (hi - lo) / 2^32).
// Float bits would crowd: values of one binary exponent share the radix select's first
// byte, and thousands of clusters in one bin serialize on its shared-memory atomics
// (tens of microseconds a cut). lo, hi: block-wide min and max (every thread calls).
__device__ void block_min_max(float &lo, float &hi) {
    __shared__ float s_mm[kSelThreads / 32][2], s_out[2];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    lo = -warp_max(-lo);
    hi = warp_max(hi);
    if (lane == 0) {
        s_mm[warp][0] = lo;
        s_mm[warp][1] = hi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float a = INFINITY, z = -INFINITY;
        for (int w = 0; w < kSelThreads / 32; w++) {
            a = fminf(a, s_mm[w][0]);
            z = fmaxf(z, s_mm[w][1]);
        }
        s_out[0] = a;
        s_out[1] = z;
    }
    __syncthreads();
    lo = s_out[0];
    hi = s_out[1];
    __syncthreads();  // s_out is read before any later call rewrites it
}
struct KeySpread {
    float lo, mul;  // key = (v - lo) * mul, truncated; 2^32 - 1024: rounding stays below 2^32
    __device__ KeySpread(float lo_, float hi_) : lo(lo_), mul(hi_ > lo_ ? 4294966272.f / (hi_ - lo_) : 0.f) {}
    __device__ uint32_t operator()(float v) const { return __float2uint_rz((v - lo) * mul); }
};

// The weighted cut of B: with clusters ordered by decreasing score (ties: lower index
// first), the shortest prefix whose weight reaches `need`. Found without sorting: a
// radix select (4 passes of 8 bits over the keys (KeySpread), histograms of weight)
// gives the key T of the cluster where the running weight reaches `need` and the
// weight `above` of the clusters scoring higher; those are in, and clusters at T are
// taken by index while the weight is short. sel[c * stride] |= chosen. keys and w are staged in
// shared memory. Weights are int (tokens) or float (centroid mass: float sums make
// the cut exact up to rounding).
constexpr int kCopies = 16;  // copies of each histogram bin (see weighted_cut)
template <class W>
__device__ void weighted_cut(const uint32_t *keys, const W *w, int C, W need, uint8_t *sel, int stride, W *hist) {
    using Scan = cub::BlockScan<W, kSelThreads>;
    __shared__ typename Scan::TempStorage scan_tmp;
    // hist: 256 bins x kCopies copies (lane & 15), so that lanes of a warp whose clusters
    // share a bin (scores crowd into a few bins) do not serialize on one address.
    __shared__ uint32_t s_digit;
    __shared__ W s_above;
    const int tid = threadIdx.x;
    uint32_t prefix = 0, mask = 0;
    W above = 0;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = tid; i < 256 * kCopies; i += kSelThreads) hist[i] = 0;
        if (tid == 0) {  // if rounding leaves no bin reaching `need`: the lowest, i.e. more clusters
            s_digit = 0;
            s_above = above;
        }
        __syncthreads();
        for (int c = tid; c < C; c += kSelThreads) {
            const uint32_t k = keys[c];
            if ((k & mask) == prefix) atomicAdd(&hist[((k >> shift) & 255u) * kCopies + (tid & (kCopies - 1))], w[c]);
        }
        __syncthreads();
        if (tid < 256) {  // each bin's copies added into its copy 0
            W b = 0;
#pragma unroll
            for (int j = 0; j < kCopies; j++) b += hist[tid * kCopies + j];
            hist[tid * kCopies] = b;
        }
        __syncthreads();
        if (tid < 32) {
            // Lane l holds bins 8l..8l+7; bins are walked from the top (highest scores).
            W v[8], sum = 0;
#pragma unroll
            for (int i = 0; i < 8; i++) {
                v[i] = hist[(tid * 8 + i) * kCopies];
                sum += v[i];
            }
            W incl = sum;  // weight in this lane's bins and every higher lane's
#pragma unroll
            for (int o = 1; o < 32; o <<= 1) {
                const W t = __shfl_down_sync(0xffffffffu, incl, o);
                if (tid + o < 32) incl += t;
            }
            const W before = above + (incl - sum);
            if (before < need && before + sum >= need) {
                W run = before;
                int digit = tid * 8;
                for (int i = 7; i >= 0; i--) {
                    if (run + v[i] >= need) {
                        digit = tid * 8 + i;
                        break;
                    }
                    run += v[i];
                }
                s_digit = uint32_t(digit);
                s_above = run;
            }
        }
        __syncthreads();
        prefix |= s_digit << shift;
        mask |= 0xffu << shift;
        above = s_above;
        __syncthreads();
    }
    // Clusters at T are taken in index order while the weight is short. With at most one
    // of them (the usual case: scores rarely tie) that is the condition above < need, no
    // scan; otherwise a block-wide scan of their weights in chunks of kSelThreads.
    int n_eq = 0;
    for (int c = tid; c < C; c += kSelThreads) n_eq += keys[c] == prefix ? 1 : 0;
    const int eq_threads = __syncthreads_count(n_eq > 0);
    if (eq_threads <= 1 && !__syncthreads_or(n_eq > 1)) {
        for (int c = tid; c < C; c += kSelThreads) {
            const uint32_t k = keys[c];
            if (k > prefix || (k == prefix && above < need)) sel[int64_t(c) * stride] = 1;
        }
        return;
    }
    W carry = 0;  // weight of the clusters at T with a lower index
    for (int c0 = 0; c0 < C; c0 += kSelThreads) {
        const int c = c0 + tid;
        uint32_t k = 0;
        W eq = 0;
        if (c < C) {
            k = keys[c];
            if (k == prefix) eq = w[c];
        }
        W excl = 0, agg = 0;
        Scan(scan_tmp).ExclusiveSum(eq, excl, agg);
        if (c < C && (k > prefix || (k == prefix && above + carry + excl < need))) sel[int64_t(c) * stride] = 1;
        carry += agg;
        __syncthreads();
    }
}

// One query head's cuts (select_kernel's B; keys, tok and mass: its shared memory).
__device__ void head_cut(const TacticLayerDev &L, int C, const int32_t *coff, const float *cs, float frac, float p,
                         float scale, int need, uint8_t *sel, uint32_t *keys, int *tok, float *mass) {
    const int group = L.n_head / L.n_head_kv, tid = threadIdx.x;
    // Each thread's loads of 4 clusters in flight together (one L2 round trip for 4 x 1024
    // clusters, not one per cluster); the scores staged in `mass` (free until the mass cut).
    float mx = -INFINITY, mn = INFINITY;
    constexpr int U = 4;
    for (int c0 = tid; c0 < C; c0 += U * kSelThreads) {
        float v[U];
        int a[U], e[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = c0 + u * kSelThreads;
            const bool ok = c < C;
            v[u] = ok ? cs[c] : 0.f;
            a[u] = ok ? coff[c] : 0;
            e[u] = ok ? coff[c + 1] : 0;
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = c0 + u * kSelThreads;
            if (c >= C) continue;
            tok[c] = e[u] - a[u];
            mass[c] = v[u];
            sel[int64_t(c) * group] = 0;
            mx = fmaxf(mx, v[u]);
            mn = fminf(mn, v[u]);
        }
    }
    block_min_max(mn, mx);
    const KeySpread spread(mn, mx);
    for (int c = tid; c < C; c += kSelThreads) keys[c] = spread(mass[c]);
    __syncthreads();
    __shared__ uint32_t hist_raw[256 * kCopies];  // both cuts share it (int or float bins)
    weighted_cut<int>(keys, tok, C, need, sel, group, reinterpret_cast<int *>(hist_raw));
    if (frac > 0.f) return;  // block-uniform
    // The mass cut: the top score (block max), the masses, their total and the target.
    using Reduce = cub::BlockReduce<float, kSelThreads>;
    __shared__ typename Reduce::TempStorage red_tmp;
    __shared__ float s_max, s_total;
    mx = Reduce(red_tmp).Reduce(mx, [](float x, float y) { return fmaxf(x, y); });
    if (tid == 0) s_max = mx;
    __syncthreads();
    mx = s_max;
    float wsum = 0.f;
    for (int c = tid; c < C; c += kSelThreads) {
        const float m = float(tok[c]) * expf(scale * (cs[c] - mx));
        mass[c] = m;
        wsum += m;
    }
    wsum = Reduce(red_tmp).Sum(wsum);
    if (tid == 0) s_total = wsum;
    __syncthreads();
    weighted_cut<float>(keys, mass, C, (1.f - (1.f - p) * 0.25f) * s_total, sel, group,
                        reinterpret_cast<float *>(hist_raw));
}

size_t select_smem(int cmax) { return size_t(cmax) * 12; }

// C. Per KV head (one block: the selection's last block of the group, or the group
// budget's block): the always-attended tokens (before the clustered range and from its end
// to n), then the rows of every cluster some query head of the group chose (the GQA
// union), as one list. The clusters are taken in chunks of kListItems x 1024
// (kListItems consecutive clusters a thread, loaded before a block-wide scan; a chunk's
// totals carried into the next); the chosen clusters (first row, list offset, rows) are
// staged in shared memory (dynamic, 12 bytes x cmax) and each warp then writes whole
// clusters, lane by lane (coalesced). hsel's byte 0 of a cluster suffices for the group
// budget (it writes only that one; the others stay 0).
constexpr int kListItems = 8;
__device__ void build_list(const TacticLayerDev &L, int kvh, int n, const uint8_t *__restrict__ hsel,
                           int32_t *__restrict__ list, int32_t *__restrict__ count, int32_t *uni_smem) {
    constexpr int ITEMS = kListItems;
    using Scan = cub::BlockScan<int, kSelThreads>;
    __shared__ typename Scan::TempStorage scan_tmp;
    int32_t *e_base = uni_smem, *e_off = uni_smem + L.cmax, *e_sz = uni_smem + 2 * L.cmax;
    const int group = L.n_head / L.n_head_kv, tid = threadIdx.x;
    const int C = L.n_clusters[kvh];
    const int32_t *coff = L.coff + int64_t(kvh) * (L.cmax + 1);
    const int cb = min(L.range[0], n), ce = min(max(L.range[1], cb), n);
    int32_t *lst = list + int64_t(kvh) * L.n_ctx;
    const int n_always = cb + (n - ce);
    for (int i = tid; i < n_always; i += kSelThreads) lst[i] = -1 - (i < cb ? i : ce + (i - cb));
    const uint8_t *hs = hsel + int64_t(kvh) * L.cmax * group;
    int rows_before = 0, sel_before = 0;  // the earlier chunks' rows and chosen clusters
    for (int c0 = 0; c0 < C; c0 += ITEMS * kSelThreads) {
        // Every load is issued before any is used (one memory round trip, not ITEMS x group):
        // a cluster's choices are group consecutive bytes of hsel ([n_head_kv][cmax][group]),
        // read from L2 (other blocks of the selection wrote them).
        int base[ITEMS + 1], off[ITEMS], idx[ITEMS];
        uint32_t chosen = 0;  // bit i: cluster c0 + tid * ITEMS + i is in the union
#pragma unroll
        for (int i = 0; i <= ITEMS; i++) {
            const int c = c0 + tid * ITEMS + i;
            base[i] = c <= C ? coff[c] : 0;
        }
#pragma unroll
        for (int i = 0; i < ITEMS; i++) {
            const int c = c0 + tid * ITEMS + i;
            bool sv = false;
            if (c < C) {
                if (group == 4) {
                    sv = __ldcg(reinterpret_cast<const unsigned int *>(hs + int64_t(c) * 4)) != 0u;
                } else {
                    for (int h = 0; h < group; h++) sv |= __ldcg(hs + int64_t(c) * group + h) != 0;
                }
            }
            if (sv) chosen |= 1u << i;
        }
        auto rows = [&](int i) { return (chosen >> i) & 1u ? base[i + 1] - base[i] : 0; };
#pragma unroll
        for (int i = 0; i < ITEMS; i++) {
            off[i] = rows(i);
            idx[i] = off[i] > 0 ? 1 : 0;
        }
        int agg = 0, n_sel = 0;
        Scan(scan_tmp).ExclusiveSum(off, off, agg);
        __syncthreads();
        Scan(scan_tmp).ExclusiveSum(idx, idx, n_sel);
#pragma unroll
        for (int i = 0; i < ITEMS; i++) {
            const int sz = rows(i);
            if (sz > 0) {
                e_base[sel_before + idx[i]] = base[i];
                e_off[sel_before + idx[i]] = n_always + rows_before + off[i];
                e_sz[sel_before + idx[i]] = sz;
            }
        }
        rows_before += agg;
        sel_before += n_sel;
        __syncthreads();  // scan_tmp reused by the next chunk; the staging complete
    }
    if (tid == 0) count[kvh] = n_always + rows_before;
    const int warp = tid / 32, lane = tid % 32;
    for (int e = warp; e < sel_before; e += kSelThreads / 32)
        for (int j = lane; j < e_sz[e]; j += 32) lst[e_off[e] + j] = e_base[e] + j;
}


// B. Per query head (one block each), the clusters it proposes, as the CPU's bounded
// selector's first prefix (bounded_selection.cpp, step 1): in decreasing centroid score,
// forced fraction f > 0: until they hold min(n, ceil(f n)) tokens;
// f = 0: until the centroid mass sum |c| exp(scale q.c) reaches 1 - (1 - P) / 4 of its
// total and they hold at least kMinTokens tokens.
// Dynamic shared memory: cmax x (key, tokens, mass) = 12 bytes a cluster.
constexpr int kMinTokens = 64;  // BoundedConfig::min_init_tokens
__global__ void __launch_bounds__(kSelThreads) select_kernel(TacticLayerDev L, const int32_t *__restrict__ d_pos,
                                                             float frac, float p, float scale,
                                                             const float *__restrict__ cscore, uint8_t *__restrict__ hsel,
                                                             int32_t *__restrict__ list, int32_t *__restrict__ count,
                                                             int32_t *__restrict__ done) {
    extern __shared__ uint32_t sel_smem[];
    uint32_t *keys = sel_smem;
    int *tok = reinterpret_cast<int *>(keys + L.cmax);
    float *mass = reinterpret_cast<float *>(tok + L.cmax);
    const int h = blockIdx.x, group = L.n_head / L.n_head_kv, kvh = h / group, tid = threadIdx.x;
    pdl_wait();
    pdl_trigger();
    const int C = L.n_clusters[kvh];
    const int32_t *coff = L.coff + int64_t(kvh) * (L.cmax + 1);
    const float *cs = cscore + int64_t(h) * L.cmax;
    // hsel is [n_head_kv][cmax][group]: the union reads a cluster's choices as one word
    uint8_t *sel = hsel + int64_t(kvh) * L.cmax * group + (h - kvh * group);
    const int n = d_pos[0] + 1;
    const int total = C > 0 ? coff[C] - coff[0] : 0;
    const int need = frac > 0.f ? min(n, int(ceilf(frac * float(n)))) : kMinTokens;
    if (need >= total) {
        for (int c = tid; c < C; c += kSelThreads) sel[int64_t(c) * group] = 1;
    } else {  // block-uniform
        head_cut(L, C, coff, cs, frac, p, scale, need, sel, keys, tok, mass);
    }
    // C. The last block of the KV group to finish builds its list (threadfence reduction:
    // the choices visible device-wide before the counter says so; no union kernel).
    __shared__ int s_last;
    __threadfence();
    __syncthreads();
    if (tid == 0) s_last = atomicAdd(&done[kvh], 1) == group - 1;
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    build_list(L, kvh, n, hsel, list, count, reinterpret_cast<int32_t *>(sel_smem));
    if (tid == 0) done[kvh] = 0;  // ready for the attention's counters and the next step
}

// B + C with options().tactic_group_budget (forced fraction only): one cut per KV head
// (one block each) instead of one per query head, so that the union itself holds
// ceil(f n) clustered tokens. A cluster's group key is the largest per-token weight any
// head of the group gives it, max_h (scale q_h.c - lse_h), lse_h = log sum_c |c|
// exp(scale q_h.c): the chosen set is the union of every head's own prefix in its score
// order, all cut at one common per-token weight (a peaked head takes fewer tokens, a flat
// one more), the weight picked so that the union holds the budget. Marks byte 0 of a
// chosen cluster's hsel entry (the others stay 0) and builds the KV head's list in the
// same block (no union kernel). Dynamic shared memory: 12 bytes a cluster.
// Two passes over the group's scores, each thread's loads issued U clusters x G heads at a
// time (one L2 round trip for U x 1024 clusters, not one per cluster): the heads' running
// max and sum |c| exp(scale q.c - max) together (online), then the keys.
template <int G>
__global__ void __launch_bounds__(kSelThreads) group_select_kernel(TacticLayerDev L, const int32_t *__restrict__ d_pos,
                                                                   float frac, float scale,
                                                                   const float *__restrict__ cscore,
                                                                   uint8_t *__restrict__ hsel, int32_t *__restrict__ list,
                                                                   int32_t *__restrict__ count) {
    constexpr int U = G >= 8 ? 2 : G >= 4 ? 4 : 8;  // clusters a thread loads at once
    extern __shared__ uint32_t sel_smem[];
    uint32_t *keys = sel_smem;
    float *kf = reinterpret_cast<float *>(keys);  // the float keys, turned into spread keys in place
    int *tok = reinterpret_cast<int *>(keys + L.cmax);
    const int kvh = blockIdx.x, group = L.n_head / L.n_head_kv, h0 = kvh * group, tid = threadIdx.x;
    pdl_wait();
    pdl_trigger();
    const int C = L.n_clusters[kvh];
    const int32_t *coff = L.coff + int64_t(kvh) * (L.cmax + 1);
    uint8_t *sel = hsel + int64_t(kvh) * L.cmax * group;
    const int n = d_pos[0] + 1;
    const int total = C > 0 ? coff[C] - coff[0] : 0;
    const int need = min(n, int(ceilf(frac * float(n))));
    for (int i = tid; i < C * group; i += kSelThreads) sel[i] = i % group == 0 && need >= total ? 1 : 0;
    if (need < total) {  // block-uniform
        const float *cs0 = cscore + int64_t(h0) * L.cmax;
        __shared__ float s_m[kSelThreads / 32][G], s_z[kSelThreads / 32][G], s_lse[G];
        const int warp = tid / 32, lane = tid % 32;
        // Pass 1: tokens a cluster, and per head the running (max, sum) of this thread.
        float m[G], z[G];
#pragma unroll
        for (int j = 0; j < G; j++) {
            m[j] = -INFINITY;
            z[j] = 0.f;
        }
        for (int c0 = tid; c0 < C; c0 += U * kSelThreads) {
            float v[U][G];
            int a[U], e[U];
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int c = c0 + u * kSelThreads;
                a[u] = c < C ? coff[c] : 0;
                e[u] = c < C ? coff[c + 1] : 0;
#pragma unroll
                for (int j = 0; j < G; j++) v[u][j] = c < C && j < group ? scale * cs0[int64_t(j) * L.cmax + c] : 0.f;
            }
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int c = c0 + u * kSelThreads;
                if (c >= C) continue;
                const int t = e[u] - a[u];
                tok[c] = t;
#pragma unroll
                for (int j = 0; j < G; j++) {
                    if (j >= group) continue;
                    const float x = v[u][j];
                    if (x > m[j]) {
                        z[j] = z[j] * expf(m[j] - x) + float(t);
                        m[j] = x;
                    } else {
                        z[j] += float(t) * expf(x - m[j]);
                    }
                }
            }
        }
        // (max, sum) pairs merged: across the warp, then across the warps.
        auto merge = [](float &ma, float &za, float mb, float zb) {
            const float mm = fmaxf(ma, mb);
            za = (ma == -INFINITY ? 0.f : za * expf(ma - mm)) + (mb == -INFINITY ? 0.f : zb * expf(mb - mm));
            ma = mm;
        };
#pragma unroll
        for (int j = 0; j < G; j++) {
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) {
                const float mb = __shfl_xor_sync(0xffffffffu, m[j], o), zb = __shfl_xor_sync(0xffffffffu, z[j], o);
                merge(m[j], z[j], mb, zb);
            }
            if (lane == 0) {
                s_m[warp][j] = m[j];
                s_z[warp][j] = z[j];
            }
        }
        __syncthreads();
        if (tid < G) {
            float mt = -INFINITY, zt = 0.f;
            for (int w = 0; w < kSelThreads / 32; w++) merge(mt, zt, s_m[w][tid], s_z[w][tid]);
            s_lse[tid] = mt + logf(zt);
        }
        __syncthreads();
        float lse[G];
#pragma unroll
        for (int j = 0; j < G; j++) lse[j] = s_lse[j];
        // Pass 2: the keys max_h (scale q_h.c - lse_h), and this thread's min and max of them.
        float lo = INFINITY, hi = -INFINITY;
        for (int c0 = tid; c0 < C; c0 += U * kSelThreads) {
            float v[U][G];
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int c = c0 + u * kSelThreads;
#pragma unroll
                for (int j = 0; j < G; j++) v[u][j] = c < C && j < group ? scale * cs0[int64_t(j) * L.cmax + c] : 0.f;
            }
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int c = c0 + u * kSelThreads;
                if (c >= C) continue;
                float k = -INFINITY;
#pragma unroll
                for (int j = 0; j < G; j++)
                    if (j < group) k = fmaxf(k, v[u][j] - lse[j]);
                kf[c] = k;
                lo = fminf(lo, k);
                hi = fmaxf(hi, k);
            }
        }
        block_min_max(lo, hi);
        const KeySpread spread(lo, hi);
        for (int c = tid; c < C; c += kSelThreads) keys[c] = spread(kf[c]);
        __syncthreads();
        __shared__ uint32_t hist_raw[256 * kCopies];
        weighted_cut<int>(keys, tok, C, need, sel, group, reinterpret_cast<int *>(hist_raw));
    }
    __syncthreads();  // hsel written (global memory, this block); keys and tok free for the list
    build_list(L, kvh, n, hsel, list, count, reinterpret_cast<int32_t *>(sel_smem));
}

// ---- B + C spread over the GPU (options().tactic_select == 2) --------------------------
// The cuts of group_select_kernel (MODE 0: one a KV head, the group budget) and of
// select_kernel (MODE 1: one per query head at a forced fraction; MODE 2: per query head
// the 64-token cut and the mass cut), but each KV head's clusters are cut into nsl slices
// of at most kSpPer clusters, one block each (grid nsl x n_head_kv, all resident at once:
// spread_slices checks). The blocks of a KV head meet at barriers (a counter in global
// memory) to exchange: 0. per head (max, sum tok exp, min) of the scores -> lse, the total
// mass and the keys' bounds, without a pass of its own; 1-3. a radix select of three
// levels (11 + 11 + 8 bits of a 30-bit spread key) per cut, weight histograms (float:
// token counts are exact) added into global memory by every block, each block then
// finding the digit itself; 4. the weight of clusters at each cut's key (ties, taken in
// index order); 5. their rows, from which each block knows where its chosen clusters
// (the union of the cuts) go in the list, which it writes itself. Keys are spread over
// bounds of the keys (MODE 0: max_h of the heads' min / max of scale q.c - lse_h), the
// order as the one-block kernels', the resolution a little coarser.
constexpr int kSpThreads = 256;
constexpr int kSpItems = 2;                      // consecutive clusters a thread
constexpr int kSpPer = kSpThreads * kSpItems;    // clusters a block
constexpr int kSpMaxSlices = 32;                 // cmax <= 16,384
constexpr int kSpB1 = 2048, kSpB2 = 2048, kSpB3 = 256;
constexpr int kSpHist = kSpB1 + kSpB2 + kSpB3;
constexpr int kSpMaxCuts = 16;                   // 2 x 8 heads
// Per KV head (ints): 2 counters, (max, sum, min) [kSpMaxSlices][8 heads], exchange
// [kSpMaxSlices][kSpMaxCuts][2] + [kSpMaxSlices] rows, then the cuts' histograms.
constexpr int kSpHead = 2 + kSpMaxSlices * 8 * 3 + kSpMaxSlices * kSpMaxCuts * 2 + kSpMaxSlices;
__host__ __device__ constexpr int sp_ws_ints(int cuts) { return kSpHead + cuts * kSpHist; }

// Waits until every block of the KV head has arrived `target` times in all (counter ctr);
// what they wrote before is visible after (threadfence on both sides).
__device__ __forceinline__ void kv_barrier(int32_t *ctr, int target) {
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        atomicAdd(ctr, 1);
        while (*reinterpret_cast<volatile int32_t *>(ctr) < target) __nanosleep(32);
        __threadfence();
    }
    __syncthreads();
}

// The digit of a radix level: the bins (global histogram gh of NB weights) walked from
// the highest, the one where the running weight (from `above`) reaches need; above
// becomes the weight of the bins higher than it. The bins are found from the first thread
// (highest bins) whose inclusive sum reaches need, so that float rounding between the scan
// and a thread's own sum cannot leave none: if no thread's does, the last thread's lowest
// bin (more clusters, never fewer). Every thread of the block calls.
template <int NB>
__device__ int sp_find_digit(const float *gh, float need, float &above) {
    constexpr int PER = NB / kSpThreads;
    using Scan = cub::BlockScan<float, kSpThreads>;
    __shared__ typename Scan::TempStorage tmp;
    __shared__ int s_d, s_first;
    __shared__ float s_a;
    const int tid = threadIdx.x;
    float v[PER], sum = 0.f;
#pragma unroll
    for (int i = 0; i < PER; i++) {
        v[i] = __ldcg(gh + NB - 1 - (tid * PER + i));
        sum += v[i];
    }
    float excl = 0.f;
    Scan(tmp).ExclusiveSum(sum, excl);
    if (tid == 0) s_first = kSpThreads - 1;
    __syncthreads();
    const float before = above + excl;
    if (before + sum >= need) atomicMin(&s_first, tid);
    __syncthreads();
    if (tid == s_first) {
        float run = before;
        int digit = NB - 1 - (tid * PER + PER - 1);
#pragma unroll
        for (int i = 0; i < PER; i++) {
            if (run + v[i] >= need || i == PER - 1) {
                digit = NB - 1 - (tid * PER + i);
                break;
            }
            run += v[i];
        }
        s_d = digit;
        s_a = run;
    }
    __syncthreads();
    above = s_a;
    const int d = s_d;
    __syncthreads();
    return d;
}

// A level's histogram of one cut: shared bins, then the non-zero ones added into global
// memory (nothing when no item of the block is in the level's bin).
template <int NB>
__device__ void sp_histogram(const uint32_t (&key)[kSpItems], const float (&w)[kSpItems], const bool (&in)[kSpItems],
                             int shift, float *s_h, float *gh) {
    bool any = false;
#pragma unroll
    for (int i = 0; i < kSpItems; i++) any |= in[i] && w[i] > 0.f;
    if (!__syncthreads_or(any)) return;  // block-uniform
    for (int i = threadIdx.x; i < NB; i += kSpThreads) s_h[i] = 0.f;
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kSpItems; i++)
        if (in[i] && w[i] > 0.f) atomicAdd(&s_h[(key[i] >> shift) & (NB - 1)], w[i]);
    __syncthreads();
    for (int i = threadIdx.x; i < NB; i += kSpThreads)
        if (s_h[i] != 0.f) atomicAdd(&gh[i], s_h[i]);
    __syncthreads();  // s_h reused by the next cut
}

template <int MODE, int G>
struct SpShape {
    static constexpr int kKeys = MODE == 0 ? 1 : G;                      // keys a cluster (one a head, or the group's)
    static constexpr int kCuts = MODE == 0 ? 1 : MODE == 1 ? G : 2 * G;  // cut k uses key k % kKeys
};

template <int MODE, int G>
__global__ void __launch_bounds__(kSpThreads) spread_select_kernel(TacticLayerDev L, const int32_t *__restrict__ d_pos,
                                                                  float frac, float p, float scale,
                                                                  const float *__restrict__ cscore,
                                                                  int32_t *__restrict__ list,
                                                                  int32_t *__restrict__ count, int32_t *ws, int nsl) {
    constexpr int NK = SpShape<MODE, G>::kKeys, NC = SpShape<MODE, G>::kCuts;
    const int kvh = blockIdx.y, blk = blockIdx.x, tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int group = L.n_head / L.n_head_kv, h0 = kvh * group;
    // the cuts that exist (heads past the group's are padding)
    // cut k is of head k % NK: those past the group's heads (padding of G) are off
    auto cut_on = [group](int k) { return MODE == 0 || k % NK < group; };
    // (strides for the most cuts a G allows, whatever the mode: modes and versions can
    // change between steps of one context and each finds its own region as it left it)
    int32_t *W = ws + int64_t(kvh) * sp_ws_ints(2 * G);
    int32_t *bar = W;
    float *part = reinterpret_cast<float *>(W + 2);                           // [kSpMaxSlices][8][3]
    float *xch = part + kSpMaxSlices * 8 * 3;                                 // [kSpMaxSlices][kSpMaxCuts][2]
    int32_t *xrows = reinterpret_cast<int32_t *>(xch + kSpMaxSlices * kSpMaxCuts * 2);  // [kSpMaxSlices]
    float *hist = reinterpret_cast<float *>(W + kSpHead);                     // [NC][kSpHist]
    __shared__ float s_h[kSpB1];
    __shared__ float s_part[kSpThreads / 32][G][3], s_lse[G], s_max[G], s_tot[G], s_bound[NK][2];
    __shared__ float s_carry[NC];
    __shared__ int s_ties, s_x[2];
    // The clusters (sizes, offsets) are written outside the decode step: read before pdl_wait.
    const int C = L.n_clusters[kvh];
    const int32_t *coff = L.coff + int64_t(kvh) * (L.cmax + 1);
    const int total = C > 0 ? coff[C] - coff[0] : 0;
    const int per = (C + nsl - 1) / nsl, c_lo = blk * per, c_hi = min(C, c_lo + per);
    // This thread's clusters c_lo + tid * kSpItems + i: first rows, tokens, scores.
    int first[kSpItems], tok[kSpItems];
    bool in[kSpItems], sel[kSpItems];
    uint32_t key[kSpItems][NK];
    float v[kSpItems][G];
#pragma unroll
    for (int i = 0; i < kSpItems; i++) {
        const int c = c_lo + tid * kSpItems + i;
        in[i] = c < c_hi;
        first[i] = in[i] ? coff[c] : 0;
        tok[i] = in[i] ? coff[c + 1] - first[i] : 0;
    }
    pdl_wait();
    pdl_trigger();  // safe: the next kernel starts once every block of this one runs (the barriers need them all)
    const int n = d_pos[0] + 1;
    const int need_tok = MODE == 2 ? kMinTokens : min(n, int(ceilf(frac * float(n))));
    const bool all = need_tok >= total;  // block-uniform
#pragma unroll
    for (int i = 0; i < kSpItems; i++) {
        const int c = c_lo + tid * kSpItems + i;
#pragma unroll
        for (int j = 0; j < G; j++)
            v[i][j] = in[i] && j < group ? (MODE == 0 ? scale : 1.f) * cscore[int64_t(h0 + j) * L.cmax + c] : 0.f;
        sel[i] = all && in[i];
    }
    int nbar = 0;  // barriers passed
    if (!all) {
        // 0. Per head (max, sum tok exp(xs (v - max)), min) of v over the slice, then over the
        // KV head; xs: MODE 0's v is scale q.c already, MODE 1 / 2's is q.c.
        const float xs = MODE == 0 ? 1.f : scale;
        auto merge = [xs](float &ma, float &za, float mb, float zb) {
            const float mm = fmaxf(ma, mb);
            za = (ma == -INFINITY ? 0.f : za * expf(xs * (ma - mm))) + (mb == -INFINITY ? 0.f : zb * expf(xs * (mb - mm)));
            ma = mm;
        };
#pragma unroll
        for (int j = 0; j < G; j++) {
            float m = -INFINITY, z = 0.f, mn = INFINITY;
#pragma unroll
            for (int i = 0; i < kSpItems; i++)
                if (in[i]) {
                    merge(m, z, v[i][j], float(tok[i]));
                    mn = fminf(mn, v[i][j]);
                }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) {
                const float mb = __shfl_xor_sync(0xffffffffu, m, o), zb = __shfl_xor_sync(0xffffffffu, z, o);
                merge(m, z, mb, zb);
                mn = fminf(mn, __shfl_xor_sync(0xffffffffu, mn, o));
            }
            if (lane == 0) {
                s_part[warp][j][0] = m;
                s_part[warp][j][1] = z;
                s_part[warp][j][2] = mn;
            }
        }
        __syncthreads();
        if (tid < G) {
            float m = -INFINITY, z = 0.f, mn = INFINITY;
            for (int w = 0; w < kSpThreads / 32; w++) {
                merge(m, z, s_part[w][tid][0], s_part[w][tid][1]);
                mn = fminf(mn, s_part[w][tid][2]);
            }
            float *pp = part + (blk * 8 + tid) * 3;
            pp[0] = m;
            pp[1] = z;
            pp[2] = mn;
        }
        kv_barrier(bar, ++nbar * nsl);
        if (warp < G) {  // warp j merges head j's slices
            float m = -INFINITY, z = 0.f, mn = INFINITY;
            for (int b = lane; b < nsl; b += 32) {
                const float *pp = part + (b * 8 + warp) * 3;
                merge(m, z, __ldcg(pp), __ldcg(pp + 1));
                mn = fminf(mn, __ldcg(pp + 2));
            }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) {
                const float mb = __shfl_xor_sync(0xffffffffu, m, o), zb = __shfl_xor_sync(0xffffffffu, z, o);
                merge(m, z, mb, zb);
                mn = fminf(mn, __shfl_xor_sync(0xffffffffu, mn, o));
            }
            if (lane == 0) {
                s_lse[warp] = m + logf(z);  // (MODE 0)
                s_max[warp] = m;
                s_tot[warp] = z;  // sum tok exp(xs (v - max)): the head's total mass
                s_part[0][warp][2] = mn;  // of v (s_part is free)
            }
        }
        __syncthreads();
        if (tid == 0) {
            if (MODE == 0) {  // bounds of max_h (v_h - lse_h)
                float lo = -INFINITY, hi = -INFINITY;
                for (int j = 0; j < group && j < G; j++) {
                    lo = fmaxf(lo, s_part[0][j][2] - s_lse[j]);
                    hi = fmaxf(hi, s_max[j] - s_lse[j]);
                }
                s_bound[0][0] = lo;
                s_bound[0][1] = hi;
            } else {  // each head's scores
                for (int j = 0; j < NK; j++) {
                    s_bound[j][0] = j < group ? s_part[0][j][2] : 0.f;
                    s_bound[j][1] = j < group ? s_max[j] : 0.f;
                }
            }
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < NK; k++) {
            const float lo = s_bound[k][0], hi = s_bound[k][1];
            const KeySpread spread(lo, hi);
#pragma unroll
            for (int i = 0; i < kSpItems; i++) {
                float x;
                if (MODE == 0) {
                    x = -INFINITY;
#pragma unroll
                    for (int j = 0; j < G; j++)
                        if (j < group) x = fmaxf(x, v[i][j] - s_lse[j]);
                } else {
                    x = v[i][k];
                }
                key[i][k] = in[i] ? spread(x) >> 2 : 0u;  // 30 bits
            }
        }
        // The weight of item i in cut k: its tokens, or (MODE 2, k >= G) its mass.
        auto weight = [&](int i, int k) -> float {
            if (MODE == 2 && k >= NK) return float(tok[i]) * expf(scale * (v[i][k - NK] - s_max[k - NK]));
            return float(tok[i]);
        };
        auto need_of = [&](int k) -> float {
            if (MODE == 2 && k >= NK) return (1.f - (1.f - p) * 0.25f) * s_tot[k - NK];
            return float(need_tok);
        };
        // 1-3. The radix levels: 11, 11 and 8 bits, every cut at each level.
        float above[NC];
        uint32_t pre[NC];
#pragma unroll
        for (int k = 0; k < NC; k++) {
            above[k] = 0.f;
            if (!cut_on(k)) continue;
            uint32_t kk[kSpItems];
            float w[kSpItems];
#pragma unroll
            for (int i = 0; i < kSpItems; i++) {
                kk[i] = key[i][k % NK];
                w[i] = weight(i, k);
            }
            sp_histogram<kSpB1>(kk, w, in, 19, s_h, hist + k * kSpHist);
        }
        kv_barrier(bar, ++nbar * nsl);
#pragma unroll
        for (int k = 0; k < NC; k++) {
            if (!cut_on(k)) continue;
            pre[k] = uint32_t(sp_find_digit<kSpB1>(hist + k * kSpHist, need_of(k), above[k]));
            uint32_t kk[kSpItems];
            float w[kSpItems];
            bool in2[kSpItems];
#pragma unroll
            for (int i = 0; i < kSpItems; i++) {
                kk[i] = key[i][k % NK];
                w[i] = weight(i, k);
                in2[i] = in[i] && (kk[i] >> 19) == pre[k];
            }
            sp_histogram<kSpB2>(kk, w, in2, 8, s_h, hist + k * kSpHist + kSpB1);
        }
        kv_barrier(bar, ++nbar * nsl);
#pragma unroll
        for (int k = 0; k < NC; k++) {
            if (!cut_on(k)) continue;
            float *h1 = hist + k * kSpHist;
            pre[k] = (pre[k] << 11) | uint32_t(sp_find_digit<kSpB2>(h1 + kSpB1, need_of(k), above[k]));
            for (int i = blk * kSpThreads + tid; i < kSpB1; i += nsl * kSpThreads) h1[i] = 0.f;  // all have read it
            uint32_t kk[kSpItems];
            float w[kSpItems];
            bool in2[kSpItems];
#pragma unroll
            for (int i = 0; i < kSpItems; i++) {
                kk[i] = key[i][k % NK];
                w[i] = weight(i, k);
                in2[i] = in[i] && (kk[i] >> 8) == pre[k];
            }
            sp_histogram<kSpB3>(kk, w, in2, 0, s_h, h1 + kSpB1 + kSpB2);
        }
        kv_barrier(bar, ++nbar * nsl);
        // 4. Per cut: clusters above its key T are in; at T, in index order while short.
        float eqw[NC];
        int eqn[NC];
#pragma unroll
        for (int k = 0; k < NC; k++) {
            eqw[k] = 0.f;
            eqn[k] = 0;
            if (!cut_on(k)) continue;
            float *h2 = hist + k * kSpHist + kSpB1;
            pre[k] = (pre[k] << 8) | uint32_t(sp_find_digit<kSpB3>(h2 + kSpB2, need_of(k), above[k]));
            for (int i = blk * kSpThreads + tid; i < kSpB2; i += nsl * kSpThreads) h2[i] = 0.f;
#pragma unroll
            for (int i = 0; i < kSpItems; i++) {
                const uint32_t kk = key[i][k % NK];
                if (in[i] && kk > pre[k]) sel[i] = true;
                if (in[i] && kk == pre[k]) {
                    eqw[k] += weight(i, k);
                    eqn[k]++;
                }
            }
        }
        // the block's tie weight and count per cut: warp sums, then one thread per cut
        __shared__ float s_eqw[kSpThreads / 32][NC];
        __shared__ int s_eqn[kSpThreads / 32][NC];
#pragma unroll
        for (int k = 0; k < NC; k++) {
            float a = eqw[k];
            int c = eqn[k];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) {
                a += __shfl_xor_sync(0xffffffffu, a, o);
                c += __shfl_xor_sync(0xffffffffu, c, o);
            }
            if (lane == 0) {
                s_eqw[warp][k] = a;
                s_eqn[warp][k] = c;
            }
        }
        __syncthreads();
        if (tid < NC) {
            float a = 0.f;
            int c = 0;
            for (int w = 0; w < kSpThreads / 32; w++) {
                a += s_eqw[w][tid];
                c += s_eqn[w][tid];
            }
            xch[(blk * kSpMaxCuts + tid) * 2] = a;
            xch[(blk * kSpMaxCuts + tid) * 2 + 1] = __int_as_float(c);
        }
        kv_barrier(bar, ++nbar * nsl);
        for (int k = 0; k < NC; k++)
            if (blk == 0 && cut_on(k))
                for (int i = tid; i < kSpB3; i += kSpThreads) hist[k * kSpHist + kSpB1 + kSpB2 + i] = 0.f;
        if (tid == 0) s_ties = 0;
        __syncthreads();
        if (tid < NC && cut_on(tid)) {  // thread k: cut k's tie weight in lower slices, and whether it has several ties
            float carry = 0.f;
            int cnt = 0;
            for (int b = 0; b < nsl; b++) {
                if (b < blk) carry += __ldcg(xch + (b * kSpMaxCuts + tid) * 2);
                cnt += __float_as_int(__ldcg(xch + (b * kSpMaxCuts + tid) * 2 + 1));
            }
            s_carry[tid] = carry;
            if (cnt > 1) atomicOr(&s_ties, 1 << tid);
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < NC; k++) {
            if (!cut_on(k)) continue;
            const uint32_t T = pre[k];
            if (!((s_ties >> k) & 1)) {  // the usual case: at most one cluster at T
#pragma unroll
                for (int i = 0; i < kSpItems; i++)
                    if (in[i] && key[i][k % NK] == T && above[k] < need_of(k)) sel[i] = true;
            } else {  // block-uniform
                using ScanF = cub::BlockScan<float, kSpThreads>;
                __shared__ typename ScanF::TempStorage scan_tmp;
                float eq[kSpItems];
#pragma unroll
                for (int i = 0; i < kSpItems; i++) eq[i] = in[i] && key[i][k % NK] == T ? weight(i, k) : 0.f;
                ScanF(scan_tmp).ExclusiveSum(eq, eq);
#pragma unroll
                for (int i = 0; i < kSpItems; i++)
                    if (in[i] && key[i][k % NK] == T && above[k] + s_carry[k] + eq[i] < need_of(k)) sel[i] = true;
                __syncthreads();
            }
        }
    }
    // 5. Rows: this block's chosen clusters' offsets in the list (an exclusive scan in
    // cluster order), after the always-attended tokens and the lower slices' rows.
    using Scan = cub::BlockScan<int, kSpThreads>;
    __shared__ typename Scan::TempStorage row_tmp;
    int off[kSpItems], my_rows = 0;
#pragma unroll
    for (int i = 0; i < kSpItems; i++) off[i] = sel[i] ? tok[i] : 0;
    Scan(row_tmp).ExclusiveSum(off, off, my_rows);
    if (tid == 0) xrows[blk] = my_rows;
    kv_barrier(bar, ++nbar * nsl);
    if (tid == 0) {
        int before = 0, rows = 0;
        for (int b = 0; b < nsl; b++) {
            const int r = __ldcg(xrows + b);
            if (b < blk) before += r;
            rows += r;
        }
        s_x[0] = before;
        s_x[1] = rows;
    }
    __syncthreads();
    const int cb = min(L.range[0], n), ce = min(max(L.range[1], cb), n), n_always = cb + (n - ce);
    int32_t *lst = list + int64_t(kvh) * L.n_ctx;
    if (blk == 0 && tid == 0) count[kvh] = n_always + s_x[1];
    for (int i = blk * kSpThreads + tid; i < n_always; i += nsl * kSpThreads)
        lst[i] = -1 - (i < cb ? i : ce + (i - cb));
    // The chosen clusters staged (first row, list offset, rows); warps write them cluster
    // by cluster, lane by lane.
    __shared__ int s_n;
    int *e_first = reinterpret_cast<int *>(s_h), *e_off = e_first + kSpPer, *e_sz = e_first + 2 * kSpPer;
    static_assert(3 * kSpPer <= kSpB1, "staging fits the histogram's shared memory");
    int idx[kSpItems], n_sel = 0;
#pragma unroll
    for (int i = 0; i < kSpItems; i++) idx[i] = sel[i] && tok[i] > 0 ? 1 : 0;
    __syncthreads();  // row_tmp reused
    Scan(row_tmp).ExclusiveSum(idx, idx, n_sel);
    const int base = n_always + s_x[0];
#pragma unroll
    for (int i = 0; i < kSpItems; i++)
        if (sel[i] && tok[i] > 0) {
            e_first[idx[i]] = first[i];
            e_off[idx[i]] = base + off[i];
            e_sz[idx[i]] = tok[i];
        }
    if (tid == 0) s_n = n_sel;
    __syncthreads();
    for (int e = warp; e < s_n; e += kSpThreads / 32)
        for (int j = lane; j < e_sz[e]; j += 32) lst[e_off[e] + j] = e_first[e] + j;
    // The last block out resets the barrier for the next step.
    if (tid == 0 && atomicAdd(&bar[1], 1) == nsl - 1) {
        bar[0] = 0;
        bar[1] = 0;
    }
}

// Slices per KV head for the spread selection, 0 where it does not apply (too many
// clusters, or more blocks than can be resident at once: its barriers need them all).
template <int MODE, int G>
int spread_slices(int cmax, int n_head_kv) {
    const int nsl = std::max(1, (cmax + kSpPer - 1) / kSpPer);
    if (nsl > kSpMaxSlices || G > 8) return 0;
    static int occ = 0;  // per instance: asked once (not a per-step call)
    if (occ == 0)
        TACTIC_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, spread_select_kernel<MODE, G>, kSpThreads, 0));
    return int64_t(nsl) * n_head_kv <= int64_t(occ) * sm_count() ? nsl : 0;
}

// ---- B + C in three barriers (options().tactic_select == 3) ---------------------------
// The cuts of spread_select_kernel, with fewer meetings of a KV head's blocks: lse, the
// total mass and the keys' bounds come from the scoring kernel's per-block partials
// (cscore2_kernel's part), no barrier; two radix levels (11 + 11 bits of the 30-bit key)
// leave a few candidates per cut (the clusters whose 22-bit prefix is the cut's), which
// every block appends to a short global list (kCand a cut) and, after the third barrier,
// resolves itself exactly (ties in index order) for its own clusters; each block's rows
// go to the list at an offset taken from a per-KV-head cursor (an atomic add: the list's
// order is no longer the clusters' order, which the attention does not need), and the
// last block out writes the count. More than kCand candidates (a crowd of near-ties at
// 2^-22 of the keys' range): all of them are taken (never fewer tokens).
constexpr int kCand = 512;
// Per KV head (ints): bar, exit, cursor, [kSpMaxCuts] candidate counts, then per cut the
// two histograms and kCand candidates (key, weight, cluster).
constexpr int kC3Head = 3 + kSpMaxCuts;
constexpr int kC3Cut = kSpB1 + kSpB2 + 3 * kCand;
__host__ __device__ constexpr int c3_ws_ints(int cuts) { return kC3Head + cuts * kC3Cut; }

template <int MODE, int G>
__global__ void __launch_bounds__(kSpThreads) cut3_select_kernel(TacticLayerDev L, const int32_t *__restrict__ d_pos,
                                                                float frac, float p, float scale,
                                                                const float *__restrict__ cscore,
                                                                const float *__restrict__ spart, int nbx,
                                                                int32_t *__restrict__ list,
                                                                int32_t *__restrict__ count, int32_t *ws, int nsl) {
    constexpr int NK = SpShape<MODE, G>::kKeys, NC = SpShape<MODE, G>::kCuts;
    const int kvh = blockIdx.y, blk = blockIdx.x, tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int group = L.n_head / L.n_head_kv, h0 = kvh * group;
    auto cut_on = [group](int k) { return MODE == 0 || k % NK < group; };
    int32_t *W = ws + int64_t(L.n_head_kv) * sp_ws_ints(2 * G) + int64_t(kvh) * c3_ws_ints(2 * G);  // after v2's
    int32_t *bar = W, *ex = W + 1, *cursor = W + 2, *cand_n = W + 3;
    float *cutws = reinterpret_cast<float *>(W + kC3Head);  // [NC][kC3Cut]
    __shared__ float s_h[kSpB1];
    __shared__ float s_lse[G], s_max[G], s_tot[G], s_bound[NK][2];
    __shared__ uint8_t s_take[kSpPer];
    __shared__ int s_base;
    const int C = L.n_clusters[kvh];
    const int32_t *coff = L.coff + int64_t(kvh) * (L.cmax + 1);
    const int total = C > 0 ? coff[C] - coff[0] : 0;
    const int per = (C + nsl - 1) / nsl, c_lo = blk * per, c_hi = min(C, c_lo + per);
    int first[kSpItems], tok[kSpItems];
    bool in[kSpItems], sel[kSpItems];
    uint32_t key[kSpItems][NK];
    float v[kSpItems][G];
#pragma unroll
    for (int i = 0; i < kSpItems; i++) {
        const int c = c_lo + tid * kSpItems + i;
        in[i] = c < c_hi;
        first[i] = in[i] ? coff[c] : 0;
        tok[i] = in[i] ? coff[c + 1] - first[i] : 0;
    }
    pdl_wait();
    pdl_trigger();  // safe: the next kernel starts once every block of this one runs (the barriers need them all)
    const int n = d_pos[0] + 1;
    const int need_tok = MODE == 2 ? kMinTokens : min(n, int(ceilf(frac * float(n))));
    const bool all = need_tok >= total;  // block-uniform
#pragma unroll
    for (int i = 0; i < kSpItems; i++) {
        const int c = c_lo + tid * kSpItems + i;
#pragma unroll
        for (int j = 0; j < G; j++) v[i][j] = in[i] && j < group ? cscore[int64_t(h0 + j) * L.cmax + c] : 0.f;
        sel[i] = all && in[i];
    }
    if (!all) {
        // Per head: the scoring blocks' partials merged (warp j: head j).
        if (warp < G) {
            float m = -INFINITY, z = 0.f, mn = INFINITY;
            if (warp < group) {
                const float *pp = spart + int64_t(h0 + warp) * nbx * 3;
                for (int b = lane; b < nbx; b += 32) {
                    const float mb = pp[b * 3], zb = pp[b * 3 + 1];
                    mn = fminf(mn, pp[b * 3 + 2]);
                    if (mb == -INFINITY) continue;
                    const float mm = fmaxf(m, mb);
                    z = (m == -INFINITY ? 0.f : z * expf(scale * (m - mm))) + zb * expf(scale * (mb - mm));
                    m = mm;
                }
            }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) {
                const float mb = __shfl_xor_sync(0xffffffffu, m, o), zb = __shfl_xor_sync(0xffffffffu, z, o);
                mn = fminf(mn, __shfl_xor_sync(0xffffffffu, mn, o));
                const float mm = fmaxf(m, mb);
                if (mm != -INFINITY)
                    z = (m == -INFINITY ? 0.f : z * expf(scale * (m - mm))) + (mb == -INFINITY ? 0.f : zb * expf(scale * (mb - mm)));
                m = mm;
            }
            if (lane == 0) {
                s_max[warp] = m;
                s_tot[warp] = z;
                s_lse[warp] = scale * m + logf(z);  // log sum |c| exp(scale s)
                s_h[warp] = mn;  // (s_h is free until the histograms)
            }
        }
        __syncthreads();
        if (tid == 0) {
            if (MODE == 0) {  // bounds of max_h (scale s_h - lse_h)
                float lo = -INFINITY, hi = -INFINITY;
                for (int j = 0; j < group && j < G; j++) {
                    lo = fmaxf(lo, scale * s_h[j] - s_lse[j]);
                    hi = fmaxf(hi, scale * s_max[j] - s_lse[j]);
                }
                s_bound[0][0] = lo;
                s_bound[0][1] = hi;
            } else {
                for (int j = 0; j < NK; j++) {
                    s_bound[j][0] = j < group ? s_h[j] : 0.f;
                    s_bound[j][1] = j < group ? s_max[j] : 0.f;
                }
            }
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < NK; k++) {
            const KeySpread spread(s_bound[k][0], s_bound[k][1]);
#pragma unroll
            for (int i = 0; i < kSpItems; i++) {
                float x;
                if (MODE == 0) {
                    x = -INFINITY;
#pragma unroll
                    for (int j = 0; j < G; j++)
                        if (j < group) x = fmaxf(x, scale * v[i][j] - s_lse[j]);
                } else {
                    x = v[i][k];
                }
                key[i][k] = in[i] ? spread(x) >> 2 : 0u;
            }
        }
        auto weight = [&](int i, int k) -> float {
            if (MODE == 2 && k >= NK) return float(tok[i]) * expf(scale * (v[i][k - NK] - s_max[k - NK]));
            return float(tok[i]);
        };
        auto need_of = [&](int k) -> float {
            if (MODE == 2 && k >= NK) return (1.f - (1.f - p) * 0.25f) * s_tot[k - NK];
            return float(need_tok);
        };
        float above[NC];
        uint32_t pre[NC];
#pragma unroll
        for (int k = 0; k < NC; k++) {
            above[k] = 0.f;
            if (!cut_on(k)) continue;
            uint32_t kk[kSpItems];
            float w[kSpItems];
#pragma unroll
            for (int i = 0; i < kSpItems; i++) {
                kk[i] = key[i][k % NK];
                w[i] = weight(i, k);
            }
            sp_histogram<kSpB1>(kk, w, in, 19, s_h, cutws + k * kC3Cut);
        }
        kv_barrier(bar, 1 * nsl);
#pragma unroll
        for (int k = 0; k < NC; k++) {
            if (!cut_on(k)) continue;
            pre[k] = uint32_t(sp_find_digit<kSpB1>(cutws + k * kC3Cut, need_of(k), above[k]));
            uint32_t kk[kSpItems];
            float w[kSpItems];
            bool in2[kSpItems];
#pragma unroll
            for (int i = 0; i < kSpItems; i++) {
                kk[i] = key[i][k % NK];
                w[i] = weight(i, k);
                in2[i] = in[i] && (kk[i] >> 19) == pre[k];
            }
            sp_histogram<kSpB2>(kk, w, in2, 8, s_h, cutws + k * kC3Cut + kSpB1);
        }
        kv_barrier(bar, 2 * nsl);
#pragma unroll
        for (int k = 0; k < NC; k++) {
            if (!cut_on(k)) continue;
            float *cw = cutws + k * kC3Cut;
            pre[k] = (pre[k] << 11) | uint32_t(sp_find_digit<kSpB2>(cw + kSpB1, need_of(k), above[k]));
            for (int i = blk * kSpThreads + tid; i < kSpB1; i += nsl * kSpThreads) cw[i] = 0.f;  // all have read it
            // above the 22-bit prefix: in; at it: a candidate
            float *cand = cw + kSpB1 + kSpB2;
#pragma unroll
            for (int i = 0; i < kSpItems; i++) {
                if (!in[i]) continue;
                const uint32_t p22 = key[i][k % NK] >> 8;
                if (p22 > pre[k]) sel[i] = true;
                else if (p22 == pre[k]) {
                    const int slot = atomicAdd(&cand_n[k], 1);
                    if (slot < kCand) {
                        cand[slot * 3] = __uint_as_float(key[i][k % NK]);
                        cand[slot * 3 + 1] = weight(i, k);
                        cand[slot * 3 + 2] = __int_as_float(c_lo + tid * kSpItems + i);
                    }
                }
            }
        }
        kv_barrier(bar, 3 * nsl);
        // Each cut's candidates: one taken iff the weight before it (higher keys, equal
        // keys at a lower index) leaves the cut short; this block marks its own.
#pragma unroll
        for (int k = 0; k < NC; k++) {
            if (!cut_on(k)) continue;
            float *cw = cutws + k * kC3Cut;
            for (int i = blk * kSpThreads + tid; i < kSpB2; i += nsl * kSpThreads) cw[kSpB1 + i] = 0.f;
            const float *cand = cw + kSpB1 + kSpB2;
            const int m = *reinterpret_cast<volatile int32_t *>(&cand_n[k]);
            for (int i = tid; i < kSpPer; i += kSpThreads) s_take[i] = 0;
            __syncthreads();
            if (m > kCand) {  // a crowd: take every candidate (block-uniform)
#pragma unroll
                for (int i = 0; i < kSpItems; i++)
                    if (in[i] && (key[i][k % NK] >> 8) == pre[k]) sel[i] = true;
                continue;
            }
            float *sk = s_h, *sw = s_h + kCand;  // candidates staged: keys (as bits), weights, clusters
            int *sc = reinterpret_cast<int *>(s_h + 2 * kCand);
            static_assert(3 * kCand <= kSpB1, "candidates fit the histogram's shared memory");
            for (int j = tid; j < m; j += kSpThreads) {
                sk[j] = __ldcg(cand + j * 3);
                sw[j] = __ldcg(cand + j * 3 + 1);
                sc[j] = __float_as_int(__ldcg(cand + j * 3 + 2));
            }
            __syncthreads();
            const float nk = need_of(k), ak = above[k];
            for (int j = tid; j < m; j += kSpThreads) {
                const int cj = sc[j];
                if (cj < c_lo || cj >= c_hi) continue;  // another block's
                const uint32_t kj = __float_as_uint(sk[j]);
                float before = 0.f;
                for (int t = 0; t < m; t++) {
                    const uint32_t kt = __float_as_uint(sk[t]);
                    if (kt > kj || (kt == kj && sc[t] < cj)) before += sw[t];
                }
                if (ak + before < nk) s_take[cj - c_lo] = 1;
            }
            __syncthreads();
#pragma unroll
            for (int i = 0; i < kSpItems; i++)
                if (in[i] && s_take[tid * kSpItems + i]) sel[i] = true;
            __syncthreads();  // s_h and s_take reused by the next cut
        }
    }
    // Rows: this block's chosen clusters at an offset taken from the KV head's cursor.
    using Scan = cub::BlockScan<int, kSpThreads>;
    __shared__ typename Scan::TempStorage row_tmp;
    int off[kSpItems], my_rows = 0;
#pragma unroll
    for (int i = 0; i < kSpItems; i++) off[i] = sel[i] ? tok[i] : 0;
    Scan(row_tmp).ExclusiveSum(off, off, my_rows);
    const int cb = min(L.range[0], n), ce = min(max(L.range[1], cb), n), n_always = cb + (n - ce);
    if (tid == 0) s_base = n_always + (my_rows > 0 ? atomicAdd(cursor, my_rows) : 0);
    int32_t *lst = list + int64_t(kvh) * L.n_ctx;
    for (int i = blk * kSpThreads + tid; i < n_always; i += nsl * kSpThreads)
        lst[i] = -1 - (i < cb ? i : ce + (i - cb));
    __shared__ int s_n;
    int *e_first = reinterpret_cast<int *>(s_h), *e_off = e_first + kSpPer, *e_sz = e_first + 2 * kSpPer;
    int idx[kSpItems], n_sel = 0;
#pragma unroll
    for (int i = 0; i < kSpItems; i++) idx[i] = sel[i] && tok[i] > 0 ? 1 : 0;
    __syncthreads();  // row_tmp reused; s_base written
    Scan(row_tmp).ExclusiveSum(idx, idx, n_sel);
    const int base = s_base;
#pragma unroll
    for (int i = 0; i < kSpItems; i++)
        if (sel[i] && tok[i] > 0) {
            e_first[idx[i]] = first[i];
            e_off[idx[i]] = base + off[i];
            e_sz[idx[i]] = tok[i];
        }
    if (tid == 0) s_n = n_sel;
    __syncthreads();
    for (int e = warp; e < s_n; e += kSpThreads / 32)
        for (int j = lane; j < e_sz[e]; j += 32) lst[e_off[e] + j] = e_first[e] + j;
    // The last block out writes the count and resets the KV head's counters.
    if (tid == 0) {
        __threadfence();
        if (atomicAdd(ex, 1) == nsl - 1) {
            __threadfence();
            count[kvh] = n_always + atomicAdd(cursor, 0);
            *cursor = 0;
            *bar = 0;
            *ex = 0;
            for (int k = 0; k < NC; k++) cand_n[k] = 0;
        }
    }
}

template <int MODE, int G>
int cut3_slices(int cmax, int n_head_kv) {
    const int nsl = std::max(1, (cmax + kSpPer - 1) / kSpPer);
    if (nsl > kSpMaxSlices || G > 8) return 0;
    static int occ = 0;  // per instance: asked once (not a per-step call)
    if (occ == 0)
        TACTIC_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, cut3_select_kernel<MODE, G>, kSpThreads, 0));
    return int64_t(nsl) * n_head_kv <= int64_t(occ) * sm_count() ? nsl : 0;
}

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

// Tensor-core pieces of the MMA variant (options().tactic_mma), sm_80+. Fragment layouts
// of mma.sync.m16n8k16 (f16 in, f32 accumulate), g = lane / 4, t = lane % 4:
//   A (16 x 16): a0 = (row g, cols 2t, 2t+1), a1 = (row g+8, ..), a2 = (row g, cols 2t+8, +9), a3 = (row g+8, ..);
//   B (16 x 8, k x n): b0 = (k 2t, 2t+1; n g), b1 = (k 2t+8, 2t+9; n g);
//   C (16 x 8): c0, c1 = (row g, cols 2t, 2t+1), c2, c3 = (row g+8, ..).
// ldmatrix.x4: lanes 8j..8j+7 give matrix j's row addresses; lane l receives (row l/4,
// cols 2(l%4), +1) of each, with .trans (rows 2(l%4), +1; col l/4).
__device__ __forceinline__ void ldsm4(uint32_t (&r)[4], uint32_t addr) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
#endif
}
__device__ __forceinline__ void ldsm4_t(uint32_t (&r)[4], uint32_t addr) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
#endif
}
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}
// x as f16 hi + lo (hi = x rounded, lo = the rest rounded): 22 bits of x's mantissa.
__device__ __forceinline__ void split_f16x2(float x0, float x1, uint32_t &hi, uint32_t &lo) {
    const __half2 h = __floats2half2_rn(x0, x1);
    const float2 hf = __half22float2(h);
    const __half2 l = __floats2half2_rn(x0 - hf.x, x1 - hf.y);
    hi = *reinterpret_cast<const uint32_t *>(&h);
    lo = *reinterpret_cast<const uint32_t *>(&l);
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
                                   int group, int bt0, int bt1, float *__restrict__ out, float *s_w) {
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
    }
}

// MMA (options().tactic_mma, head_dim <= 128): the same pipeline, each stage's scores and
// values on tensor cores. The group's query heads are the rows of the 16-row A tile:
// head g's q in f16 hi parts in row g and lo parts in row g + 8 (G <= 8), so S = c(row g)
// + c(row g+8) keeps q in 22 bits; the weights P the same way (hi in row g, lo in row
// g + 8) for O = P V, and O = o(row g) + o(row g+8). K and V stay f16, as cached.
template <int D, int G, bool MMA, int W, bool PTAIL, bool BULK = false>
__global__ void __launch_bounds__(W * 32) attend_stream_kernel(
    TacticLayerDev L, const float *__restrict__ q, float scale, const int32_t *__restrict__ list,
    const int32_t *__restrict__ count, float *__restrict__ part_acc, float *__restrict__ part_ml,
    int32_t *__restrict__ done, int nb, float *__restrict__ out, int align) {
    constexpr int LPT = D / 8, TPW = 32 / LPT, R = 2048 / D, STEPS = R / TPW, CPL = R * LPT / 32;
    constexpr int NT = W * 32, kMaxKv = 64;
    constexpr int LDS = MMA ? D + 8 : D;  // stage row stride, halves
    static_assert(R <= 32 && CPL * 32 == R * LPT, "stage shape");
    static_assert(!MMA || (G <= 8 && D <= 128 && R % 16 == 0), "MMA variant shape");
    extern __shared__ uint4 stream_smem_raw[];
    __half *smem = reinterpret_cast<__half *>(stream_smem_raw);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, slot = lane / LPT, dl = lane % LPT;
    const int H = L.n_head, Hkv = L.n_head_kv, group = H / Hkv, b = blockIdx.x;
    __shared__ int s_cnt[kMaxKv];
    __shared__ float s_p[W][G][R];
    __shared__ float s_m[W][G], s_l[W][G];
    __shared__ int s_last;
    pdl_wait();  // count, the lists and q come from earlier kernels of the step
    pdl_trigger();
    for (int k = threadIdx.x; k < Hkv && k < kMaxKv; k += NT) s_cnt[k] = count[k];
    __syncthreads();
    auto cnt_of = [&](int k) { return k < kMaxKv ? s_cnt[k] : count[k]; };
    int64_t tot = 0;
    for (int k = 0; k < Hkv; k++) tot += cnt_of(k);
    const int nbe = active_blocks(tot, nb);
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
    for (int kvh = 0; kvh < Hkv; kvh++) {
        const int cnt = cnt_of(kvh);
        const int64_t kv_start = start;
        // this block's rows [s0, s1) of the KV head; the head's blocks bt0 .. bt1 - 1 (consecutive)
        int s0, s1, bt0, bt1;
        if (aligned) {
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
        if (cnt == 0) {  // nothing to attend: no block touches this KV head, block 0 writes its zeros
            if (b == 0)
                for (int e = threadIdx.x; e < group * D; e += NT) out[int64_t(h0) * D + e] = 0.f;
            continue;
        }
        if (s0 >= s1) continue;  // block-uniform
        const int32_t *lst = list + int64_t(kvh) * L.n_ctx;
        const __half *Kc = L.k_cache + int64_t(kvh) * L.n_ctx * D, *Vc = L.v_cache + int64_t(kvh) * L.n_ctx * D;
        const __half *Ks = L.ks + int64_t(kvh) * L.cap * D, *Vs = L.vs + int64_t(kvh) * L.cap * D;
        float qr[G][8], acc[G][8], m[G], l[G];
        // MMA: the A fragments of q (hi/lo rows) for every k-step, O, this lane's head's m and l
        constexpr int DK = D / 16, DTN = D / 8, NTS = R / 8;
        uint32_t qf[MMA ? DK : 1][4];
        float o[MMA ? DTN : 1][4];
        float mm = -INFINITY, ml = 0.f;
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
            return (k < n_k && lane < R && t < s1) ? lst[t] : kNoRow;
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
        if (s_last && PTAIL) {
            __threadfence();
            merge_kv_head_wide<D, G, NT>(part_acc, part_ml, H, h0, group, bt0, bt1, out, reinterpret_cast<float *>(smem));
            if (threadIdx.x == 0) done[kvh] = 0;  // ready for the next step (graph replays)
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
            }
            if (threadIdx.x == 0) done[kvh] = 0;  // ready for the next step (graph replays)
        }
        if constexpr (BULK) fence_async_shared();  // the merge's accesses, before the next head's copies
        __syncthreads();  // s_acc (the stream buffers), s_p and s_last are reused by the next KV head
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
                                                              float *__restrict__ out) {
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

int g_of(int group) { return group <= 1 ? 1 : group <= 2 ? 2 : group <= 4 ? 4 : 8; }

// Blocks (per KV head) of cscore2_kernel: its partials' count for the selection.
int score2_blocks(int D, int cmax) {
    const int per_block = kScoreWarps * (32 / (D / 8)) * kScore2Rows;
    return std::max(1, (cmax + per_block - 1) / per_block);
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

// tactic_select 3 reads the scoring kernel's partials: scores v2 with them.
bool select3(const TacticStepBufs &b) { return options().tactic_select == 3 && b.sel_ws && b.spart; }

template <int D>
void score_d(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    const float *q = a.q;
    float *cscore = b.cscore;
    if (select3(b)) return score2_d<D>(L, q, cscore, b.spart, a.scale, s);
    if (options().tactic_score >= 2) return score2_d<D>(L, q, cscore, nullptr, a.scale, s);
    constexpr int TPW = 32 / (D / 8);
    const int per_block = kScoreWarps * TPW * kScoreUnroll;
    dim3 grid(unsigned(std::max(1, (L.cmax + per_block - 1) / per_block)), unsigned(L.n_head_kv));
    switch (g_of(L.n_head / L.n_head_kv)) {
        case 1: cscore_kernel<D, 1><<<grid, kScoreWarps * 32, 0, s>>>(L, q, cscore); break;
        case 2: cscore_kernel<D, 2><<<grid, kScoreWarps * 32, 0, s>>>(L, q, cscore); break;
        case 4: cscore_kernel<D, 4><<<grid, kScoreWarps * 32, 0, s>>>(L, q, cscore); break;
        default: cscore_kernel<D, 8><<<grid, kScoreWarps * 32, 0, s>>>(L, q, cscore); break;
    }
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
bool stream_bulk() {
    static int major = -1;
    if (major < 0) {
        int dev = 0;
        TACTIC_CU(cudaGetDevice(&dev));
        TACTIC_CU(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    }
    return options().tactic_attend == 4 && major >= 9;
}

template <int D, int G, int W, bool PT, bool BULK = false>
void launch_stream_mma(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    launch_pdl(attend_stream_kernel<D, G, true, W, PT, BULK>, dim3(unsigned(b.n_blocks)), dim3(W * 32), stream_smem(D, W), s,
               L, a.q, a.scale, static_cast<const int32_t *>(b.list), static_cast<const int32_t *>(b.count), b.part_acc,
               b.part_ml, b.done, b.n_blocks, a.out, PT ? stream_align() : 0);
}

template <int D, int G>
void attend_stream_dg(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    if constexpr (D <= 128 && G <= 8) {
        if (use_mma<D>()) {
            if constexpr (D == 128) {  // (the variants exist for head_dim 128: the 8B shape measured)
                if (stream_bulk()) return launch_stream_mma<D, G, kStreamWarps, true, true>(L, a, b, s);
                if (stream_wide_tail() && stream_warps<D>() == 8) return launch_stream_mma<D, G, 8, true>(L, a, b, s);
                if (stream_wide_tail()) return launch_stream_mma<D, G, kStreamWarps, true>(L, a, b, s);
            }
            return launch_stream_mma<D, G, kStreamWarps, false>(L, a, b, s);
        }
    }
    launch_pdl(attend_stream_kernel<D, G, false, kStreamWarps, false>, dim3(unsigned(b.n_blocks)), dim3(kStreamWarps * 32), stream_smem(D),
               s, L, a.q, a.scale, static_cast<const int32_t *>(b.list), static_cast<const int32_t *>(b.count),
               b.part_acc, b.part_ml, b.done, b.n_blocks, a.out, 0);
}

template <int D>
void attend_d(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    const bool fused = options().tactic_fused != 0;
    switch (g_of(L.n_head / L.n_head_kv)) {
        case 1: fused ? attend_stream_dg<D, 1>(L, a, b, s) : attend_dg<D, 1>(L, a, b, s); break;
        case 2: fused ? attend_stream_dg<D, 2>(L, a, b, s) : attend_dg<D, 2>(L, a, b, s); break;
        case 4: fused ? attend_stream_dg<D, 4>(L, a, b, s) : attend_dg<D, 4>(L, a, b, s); break;
        default: fused ? attend_stream_dg<D, 8>(L, a, b, s) : attend_dg<D, 8>(L, a, b, s); break;
    }
}

// The stream kernels' shared memory beyond the default 48 KB.
template <int D, bool MMA, int W, bool PT, bool BULK = false>
void stream_attrs_v() {
    const int smem = int(stream_smem(D, W));
    TACTIC_CU(cudaFuncSetAttribute(attend_stream_kernel<D, 1, MMA, W, PT, BULK>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    TACTIC_CU(cudaFuncSetAttribute(attend_stream_kernel<D, 2, MMA, W, PT, BULK>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    TACTIC_CU(cudaFuncSetAttribute(attend_stream_kernel<D, 4, MMA, W, PT, BULK>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    TACTIC_CU(cudaFuncSetAttribute(attend_stream_kernel<D, 8, MMA, W, PT, BULK>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
}
template <int D>
void stream_attrs() {
    stream_attrs_v<D, false, kStreamWarps, false>();
    if constexpr (D <= 128) stream_attrs_v<D, true, kStreamWarps, false>();
    if constexpr (D == 128) {
        stream_attrs_v<D, true, kStreamWarps, true>();
        stream_attrs_v<D, true, kStreamWarps, true, true>();
        stream_attrs_v<D, true, 8, true>();
    }
}

template <int D, int G>
int occupancy() {
    int n = 0;
    bool mma_done = false;
    if constexpr (D <= 128 && G <= 8) {
        if (options().tactic_fused && use_mma<D>()) {
            const void *f = reinterpret_cast<const void *>(attend_stream_kernel<D, G, true, kStreamWarps, false>);
            int warps = kStreamWarps;
            if constexpr (D == 128) {  // as attend_stream_dg picks
                if (stream_bulk()) {
                    f = reinterpret_cast<const void *>(attend_stream_kernel<D, G, true, kStreamWarps, true, true>);
                } else if (stream_wide_tail() && stream_warps<D>() == 8) {
                    f = reinterpret_cast<const void *>(attend_stream_kernel<D, G, true, 8, true>);
                    warps = 8;
                } else if (stream_wide_tail()) {
                    f = reinterpret_cast<const void *>(attend_stream_kernel<D, G, true, kStreamWarps, true>);
                }
            }
            TACTIC_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, f, warps * 32, stream_smem(D, warps)));
            mma_done = true;
        }
    }
    if (mma_done) {
    } else if (options().tactic_fused)
        TACTIC_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, attend_stream_kernel<D, G, false, kStreamWarps, false>, kStreamWarps * 32,
                                                                stream_smem(D)));
    else
        TACTIC_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, attend_kernel<D, G>, kWarps * 32, 0));
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

int tactic_attn_blocks(int head_dim, int group) {
    tactic_init_kernels();  // the stream kernels' shared memory, before asking how many fit
    const int occ = head_dim == 64 ? occupancy_g<64>(group) : head_dim == 128 ? occupancy_g<128>(group)
                                                                               : occupancy_g<256>(group);
    return occ * sm_count();
}

void tactic_score_dev(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    switch (L.head_dim) {
        case 64: score_d<64>(L, a, b, s); break;
        case 128: score_d<128>(L, a, b, s); break;
        default: score_d<256>(L, a, b, s); break;
    }
}

namespace {
// The group budget applies to a forced fraction only (the mass target stays per head).
bool group_budget(const TacticStepArgs &a) { return options().tactic_group_budget != 0 && a.force_fraction > 0.f; }

// The spread selection (options().tactic_select == 2), if it applies to this shape.
template <int MODE, int G>
bool spread_g(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    const int nsl = spread_slices<MODE, G>(L.cmax, L.n_head_kv);
    if (nsl == 0) return false;
    launch_pdl(spread_select_kernel<MODE, G>, dim3(unsigned(nsl), unsigned(L.n_head_kv)), dim3(kSpThreads), 0, s, L,
               a.d_pos, a.force_fraction, a.p, a.scale, static_cast<const float *>(b.cscore), b.list, b.count,
               b.sel_ws, nsl);
    return true;
}
template <int MODE>
bool spread_m(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    switch (g_of(L.n_head / L.n_head_kv)) {
        case 1: return spread_g<MODE, 1>(L, a, b, s);
        case 2: return spread_g<MODE, 2>(L, a, b, s);
        case 4: return spread_g<MODE, 4>(L, a, b, s);
        default: return spread_g<MODE, 8>(L, a, b, s);
    }
}
bool spread_dg(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    if (group_budget(a)) return spread_m<0>(L, a, b, s);
    return a.force_fraction > 0.f ? spread_m<1>(L, a, b, s) : spread_m<2>(L, a, b, s);
}
template <int MODE, int G>
bool cut3_g(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    const int nsl = cut3_slices<MODE, G>(L.cmax, L.n_head_kv);
    if (nsl == 0) return false;
    launch_pdl(cut3_select_kernel<MODE, G>, dim3(unsigned(nsl), unsigned(L.n_head_kv)), dim3(kSpThreads), 0, s, L,
               a.d_pos, a.force_fraction, a.p, a.scale, static_cast<const float *>(b.cscore),
               static_cast<const float *>(b.spart), score2_blocks(L.head_dim, L.cmax), b.list, b.count, b.sel_ws, nsl);
    return true;
}
template <int MODE>
bool cut3_m(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    switch (g_of(L.n_head / L.n_head_kv)) {
        case 1: return cut3_g<MODE, 1>(L, a, b, s);
        case 2: return cut3_g<MODE, 2>(L, a, b, s);
        case 4: return cut3_g<MODE, 4>(L, a, b, s);
        default: return cut3_g<MODE, 8>(L, a, b, s);
    }
}
bool cut3_dg(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    if (group_budget(a)) return cut3_m<0>(L, a, b, s);
    return a.force_fraction > 0.f ? cut3_m<1>(L, a, b, s) : cut3_m<2>(L, a, b, s);
}
}  // namespace

size_t tactic_select_ws_bytes(int n_head, int n_head_kv) {
    const int cuts = 2 * g_of(n_head / std::max(1, n_head_kv));
    return sizeof(int32_t) * size_t(sp_ws_ints(cuts) + c3_ws_ints(cuts)) * size_t(n_head_kv);  // v2's, then v3's
}
size_t tactic_score_parts_bytes(int n_head, int cmax) {
    return sizeof(float) * 3 * size_t(n_head) * size_t(score2_blocks(256, std::max(1, cmax)));  // the most blocks
}

void tactic_select_dev(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    const size_t smem = select_smem(L.cmax);
    TACTIC_CHECK(L.cmax <= tactic_max_clusters(), TACTIC_ERR_UNSUPPORTED,
                 "Tactic on CUDA: more than " + std::to_string(tactic_max_clusters()) + " clusters per KV head");
    if (select3(b) && cut3_dg(L, a, b, s)) return;  // (a shape it does not fit: the kernels below)
    if (options().tactic_select == 2 && b.sel_ws && spread_dg(L, a, b, s)) return;
    if (group_budget(a)) {
        const unsigned g = unsigned(L.n_head_kv);
        const float f = a.force_fraction;
        const float *cs = b.cscore;
        switch (g_of(L.n_head / L.n_head_kv)) {
            case 1: launch_pdl(group_select_kernel<1>, dim3(g), dim3(kSelThreads), smem, s, L, a.d_pos, f, a.scale, cs, b.hsel, b.list, b.count); break;
            case 2: launch_pdl(group_select_kernel<2>, dim3(g), dim3(kSelThreads), smem, s, L, a.d_pos, f, a.scale, cs, b.hsel, b.list, b.count); break;
            case 4: launch_pdl(group_select_kernel<4>, dim3(g), dim3(kSelThreads), smem, s, L, a.d_pos, f, a.scale, cs, b.hsel, b.list, b.count); break;
            default: launch_pdl(group_select_kernel<8>, dim3(g), dim3(kSelThreads), smem, s, L, a.d_pos, f, a.scale, cs, b.hsel, b.list, b.count); break;
        }
        return;
    }
    launch_pdl(select_kernel, dim3(unsigned(L.n_head)), dim3(kSelThreads), smem, s, L, a.d_pos, a.force_fraction, a.p,
               a.scale, static_cast<const float *>(b.cscore), b.hsel, b.list, b.count, b.done);
}

// The lists are built by the selection kernels (the last block of each KV group, or the
// group budget's one block): nothing to enqueue.
void tactic_union_dev(const TacticLayerDev &, const TacticStepArgs &, const TacticStepBufs &, cudaStream_t) {}

namespace {
// The selection stages every cluster's key, tokens and mass in shared memory: as many
// clusters as the device's opt-in shared memory leaves beside the kernels' own.
int g_max_clusters = 0;
}  // namespace

int tactic_max_clusters() {
    if (g_max_clusters == 0) {
        int dev = 0, optin = 0;
        TACTIC_CU(cudaGetDevice(&dev));
        TACTIC_CU(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
        size_t static_max = 0;
        for (const void *f : {reinterpret_cast<const void *>(select_kernel),
                              reinterpret_cast<const void *>(group_select_kernel<8>)}) {
            cudaFuncAttributes fa;
            TACTIC_CU(cudaFuncGetAttributes(&fa, f));
            static_max = std::max(static_max, fa.sharedSizeBytes);
        }
        const int fit = int((size_t(optin) - static_max - 1024) / 12);
        g_max_clusters = std::max(kSelThreads, std::min(16 * kSelThreads, fit / kSelThreads * kSelThreads));
    }
    return g_max_clusters;
}

void tactic_init_kernels() {
    const int smem = int(select_smem(tactic_max_clusters()));
    TACTIC_CU(cudaFuncSetAttribute(select_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    TACTIC_CU(cudaFuncSetAttribute(group_select_kernel<1>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    TACTIC_CU(cudaFuncSetAttribute(group_select_kernel<2>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    TACTIC_CU(cudaFuncSetAttribute(group_select_kernel<4>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    TACTIC_CU(cudaFuncSetAttribute(group_select_kernel<8>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
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
               static_cast<const float *>(b.part_ml), b.n_blocks, a.out);
}

void tactic_step_dev(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    tactic_score_dev(L, a, b, s);
    tactic_select_dev(L, a, b, s);
    tactic_union_dev(L, a, b, s);
    tactic_attend_dev(L, a, b, s);
    tactic_merge_dev(L, a, b, s);
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
    DevBuf kc, vc, ks, vs, cent, coff, ncl, range;
    LayerCopy(size_t kv, size_t sorted, size_t cent_b, size_t coff_b, size_t ncl_b)
        : kc(kv), vc(kv), ks(sorted), vs(sorted), cent(cent_b), coff(coff_b), ncl(ncl_b), range(2 * sizeof(int32_t)) {}
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
    const size_t per_copy = 2 * kv_b + 2 * sorted_b + cent_b + coff_b;
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
    to_f16_dev(d_cent32.as<float>(), int64_t(Hkv) * cmax * D, c0.cent.as<__half>(), st);
    tactic_pack_dev(c0.kc.as<__half>(), c0.vc.as<__half>(), Hkv, in.n_ctx, D, d_order.as<int32_t>(), cap, len,
                    c0.ks.as<__half>(), c0.vs.as<__half>(), st);
    TACTIC_CU(cudaStreamSynchronize(st));
    check_launch("tactic pack");
    c0.coff.upload(coff_h.data(), coff_b);
    c0.ncl.upload(in.n_clusters, ncl_b);
    const int32_t range_h[2] = {in.c_begin, in.c_end};
    c0.range.upload(range_h, sizeof(range_h));
    for (int i = 1; i < copies; i++) {
        LayerCopy &c = lc[size_t(i)];
        copy_d2d(c.kc, c0.kc);
        copy_d2d(c.vc, c0.vc);
        copy_d2d(c.ks, c0.ks);
        copy_d2d(c.vs, c0.vs);
        copy_d2d(c.cent, c0.cent);
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
    bufs.count = d_count.as<int32_t>();
    bufs.part_acc = d_pacc.as<float>();
    bufs.part_ml = d_pml.as<float>();
    d_q.upload(in.q, d_q.size());
    const int32_t pos = in.n_tokens - 1;
    d_pos.upload(&pos, sizeof(pos));
    d_out.poison();
    d_pacc.poison();  // rows no block wrote must never be read
    TacticStepArgs args;
    args.q = d_q.as<float>();
    args.d_pos = d_pos.as<int32_t>();
    args.scale = in.scale;
    args.force_fraction = in.force_fraction;
    args.p = in.p;
    args.out = d_out.as<float>();

    // A graph of `stage` (kStages: 0 score, 1 select, 2 union, 3 attend, 4 merge, 5 all) over every copy.
    constexpr int kStages = 6;
    auto capture = [&](int stage, int n_copies) {
        TACTIC_CU(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
        for (int i = 0; i < n_copies; i++) {
            const TacticLayerDev &L = layers[size_t(i)];
            if (stage == 0) tactic_score_dev(L, args, bufs, st);
            else if (stage == 1) tactic_select_dev(L, args, bufs, st);
            else if (stage == 2) tactic_union_dev(L, args, bufs, st);
            else if (stage == 3) tactic_attend_dev(L, args, bufs, st);
            else if (stage == 4) tactic_merge_dev(L, args, bufs, st);
            else tactic_step_dev(L, args, bufs, st);
        }
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
    const int reps = std::max(1, options().bench_iters / copies);
    cudaEvent_t e0, e1;
    TACTIC_CU(cudaEventCreate(&e0));
    TACTIC_CU(cudaEventCreate(&e1));
    for (int stage = 0; stage < kStages; stage++) {
        if (stage == 4 && options().tactic_fused) {  // merged inside the attention: nothing to time
            in.stage_ms[stage] = 0.0;
            continue;
        }
        cudaGraphExec_t exec = capture(stage, copies);
        TACTIC_CU(cudaGraphLaunch(exec, st));  // warm-up
        std::vector<float> per_step;
        for (int trial = 0; trial < 5; trial++) {
            TACTIC_CU(cudaEventRecord(e0, st));
            for (int r = 0; r < reps; r++) TACTIC_CU(cudaGraphLaunch(exec, st));
            TACTIC_CU(cudaEventRecord(e1, st));
            TACTIC_CU(cudaEventSynchronize(e1));
            float ms = 0;
            TACTIC_CU(cudaEventElapsedTime(&ms, e0, e1));
            per_step.push_back(ms / float(reps * copies));
        }
        cudaGraphExecDestroy(exec);
        std::sort(per_step.begin(), per_step.end());
        in.stage_ms[stage] = per_step[2];
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    check_launch("tactic step bench");
    in.stage_ms[kStages] = copies;
}

}  // namespace cuda
}  // namespace tactic
