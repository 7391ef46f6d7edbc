// B + C. Tactic's selection on the GPU (tactic_gpu.cuh says what each stage of the step
// does): per query head (or per KV head with the group budget) the clusters in decreasing
// centroid score up to the budget or the mass target, the GQA union, and each KV head's
// list of rows for the sparse attention. Implementations (options().tactic_select): 1 one
// block per cut (select_kernel, group_select_kernel), which every shape fits; 3 a KV head's
// clusters spread over many blocks that meet at barriers (cut3_select_kernel), where they
// can all be resident at once; 4 that with one barrier fewer (one radix level); 5 that
// computing the centroid scores itself (head_dim 128: no scoring kernel; elsewhere 4); 9 and
// 10 (9 the default) run 4's cut inside the sparse attention kernel (tactic_gpu.cu) where
// they apply, and 4 here elsewhere. (6-8, the group budget's cut resolved from published
// keys, listed tokens twice on the H200 in session 9 and were removed: branch ts-s9, 96969b4.)
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include <algorithm>
#include <cmath>
#include <string>

#include "cuda_ops.cuh"
#include "cuda_util.cuh"
#include "device_limits.cuh"
#include "pdl.cuh"
#include "tactic_cut.cuh"
#include "tactic_gpu.cuh"
#include "tactic_kernels.cuh"

namespace tactic {
namespace cuda {

namespace {

constexpr int kSelThreads = 1024;  // the one-block selection


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

// B + C spread over many blocks a KV head (tactic_select 3-5; the pieces and the cut in
// tactic_cut.cuh): each block's cut (cut3_cut), then its rows at an offset taken from the KV
// head's cursor (an atomic add: the list's order is not the clusters', which the attention
// does not need); the last block out writes the count and resets the KV head's counters.
template <int MODE, int G, bool ONE, int FD>
__global__ void __launch_bounds__(kSpThreads) cut3_select_kernel(TacticLayerDev L, const int32_t *__restrict__ d_pos,
                                                                float frac, float p, float scale,
                                                                const float *__restrict__ q, float *cscore,
                                                                float *spart, int nbx,
                                                                int32_t *__restrict__ list,
                                                                int32_t *__restrict__ count, int32_t *ws, int nsl,
                                                                uint8_t *__restrict__ hsel) {
    constexpr int NC = SpShape<MODE, G>::kCuts;
    const int kvh = blockIdx.y, blk = blockIdx.x, tid = threadIdx.x;
    int32_t *W = ws + int64_t(kvh) * c3_ws_ints(2 * G);
    int32_t *bar = W, *ex = W + 1, *cursor = W + 2, *cand_n = W + 3;
    __shared__ float s_h[ONE ? kOneB : kSpB1];
    __shared__ uint8_t s_take[kSpPer];
    __shared__ float s_sc[FD > 0 ? G : 1][FD > 0 ? kSpPer : 1];  // FD: this block's scores
    int first[kSpItems], tok[kSpItems];
    bool in[kSpItems], sel[kSpItems];
    const Cut3Out co = cut3_cut<MODE, G, ONE, FD>(L, d_pos, frac, p, scale, q, cscore, spart, nbx, W, nsl, kvh, blk,
                                                  s_h, reinterpret_cast<float (*)[kSpPer]>(&s_sc[0][0]), s_take,
                                                  first, tok, in, sel);
    // The output estimate (hsel non-null) reads which clusters the group attends: every
    // byte of a cluster's group set, so that no byte another selection left stays behind.
    if (hsel) {
        const int group = L.n_head / L.n_head_kv;
#pragma unroll
        for (int i = 0; i < kSpItems; i++)
            if (in[i])
                for (int j = 0; j < group; j++)
                    hsel[(int64_t(kvh) * L.cmax + co.c_lo + tid * kSpItems + i) * group + j] = sel[i] ? 1 : 0;
    }
    const int n = co.n;
    const int cb = min(L.range[0], n), ce = min(max(L.range[1], cb), n), n_always = cb + (n - ce);
    int32_t *lst = list + int64_t(kvh) * L.n_ctx;
    for (int i = blk * kSpThreads + tid; i < n_always; i += nsl * kSpThreads)
        lst[i] = -1 - (i < cb ? i : ce + (i - cb));
    cut3_write_rows(sel, first, tok, lst, [&](int rows) { return n_always + (rows > 0 ? atomicAdd(cursor, rows) : 0); },
                    s_h);
    // The last block out writes the count and resets the KV head's counters.
    __shared__ int s_out;
    if (tid == 0) {
        __threadfence();
        s_out = atomicAdd(ex, 1) == nsl - 1;
    }
    __syncthreads();
    if (!s_out) return;
    __threadfence();
    if (tid == 0) {
        count[kvh] = n_always + atomicAdd(cursor, 0);
        *cursor = 0;
        *bar = 0;
        *ex = 0;
        for (int k = 0; k < NC; k++) cand_n[k] = 0;
    }
}

template <int MODE, int G, bool ONE, int FD>
int cut3_slices(int cmax, int n_head_kv) {
    const int nsl = std::max(1, (cmax + kSpPer - 1) / kSpPer);
    if (nsl > kSpMaxSlices || G > 8) return 0;
    static int occ = 0;  // per instance: asked once (not a per-step call)
    if (occ == 0)
        TACTIC_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, cut3_select_kernel<MODE, G, ONE, FD>, kSpThreads, 0));
    return int64_t(nsl) * n_head_kv <= int64_t(occ) * sm_count() ? nsl : 0;
}

// The group budget applies to a forced fraction only (the mass target stays per head).
bool group_budget(const TacticStepArgs &a) { return options().tactic_group_budget != 0 && a.force_fraction > 0.f; }

template <int MODE, int G, bool ONE, int FD>
bool cut3_g(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    const int nsl = cut3_slices<MODE, G, ONE, FD>(L.cmax, L.n_head_kv);
    if (nsl == 0) return false;
    launch_pdl(cut3_select_kernel<MODE, G, ONE, FD>, dim3(unsigned(nsl), unsigned(L.n_head_kv)),
               dim3(kSpThreads), 0, s, L, a.d_pos, a.force_fraction, a.p, a.scale, a.q, b.cscore, b.spart,
               FD > 0 ? nsl : score2_blocks(L.head_dim, L.cmax), b.list, b.count, b.sel_ws, nsl,
               tactic_tail_on(L, a, b) ? b.hsel : nullptr);
    return true;
}
template <int MODE, bool ONE, int FD>
bool cut3_m(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    switch (g_of(L.n_head / L.n_head_kv)) {
        case 1: return cut3_g<MODE, 1, ONE, FD>(L, a, b, s);
        case 2: return cut3_g<MODE, 2, ONE, FD>(L, a, b, s);
        case 4: return cut3_g<MODE, 4, ONE, FD>(L, a, b, s);
        default: return cut3_g<MODE, 8, ONE, FD>(L, a, b, s);
    }
}
template <bool ONE, int FD>
bool cut3_dg(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    if (group_budget(a)) return cut3_m<0, ONE, FD>(L, a, b, s);
    return a.force_fraction > 0.f ? cut3_m<1, ONE, FD>(L, a, b, s) : cut3_m<2, ONE, FD>(L, a, b, s);
}

// Whether cut3_g<.., FD> fits this shape (the same answer the launch will get).
template <int MODE, int FD>
bool fused_fits(const TacticLayerDev &L) {
    switch (g_of(L.n_head / L.n_head_kv)) {
        case 1: return cut3_slices<MODE, 1, true, FD>(L.cmax, L.n_head_kv) > 0;
        case 2: return cut3_slices<MODE, 2, true, FD>(L.cmax, L.n_head_kv) > 0;
        case 4: return cut3_slices<MODE, 4, true, FD>(L.cmax, L.n_head_kv) > 0;
        default: return cut3_slices<MODE, 8, true, FD>(L.cmax, L.n_head_kv) > 0;
    }
}
}  // namespace


bool tactic_select_scores(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b) {
    const int v = options().tactic_select;
    // (the mass target stays with the scoring kernel: with the fused blocks' partials one of
    // its twins failed on the H200, batch 2 of session 9)
    if (v != 5 || L.head_dim != 128 || !select_from_parts(b) || a.force_fraction <= 0.f) return false;
    return group_budget(a) ? fused_fits<0, 128>(L) : fused_fits<1, 128>(L);
}

size_t tactic_select_ws_bytes(int n_head, int n_head_kv) {
    const int cuts = 2 * g_of(n_head / std::max(1, n_head_kv));
    return sizeof(int32_t) * size_t(c3_ws_ints(cuts)) * size_t(n_head_kv);
}

void tactic_select_dev(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b, cudaStream_t s) {
    const size_t smem = select_smem(L.cmax);
    TACTIC_CHECK(L.cmax <= tactic_max_clusters(), TACTIC_ERR_UNSUPPORTED,
                 "Tactic on CUDA: more than " + std::to_string(tactic_max_clusters()) + " clusters per KV head");
    if (tactic_fused_slices(L, a, b) > 0) return;  // tactic_select 9, 10: inside the attention kernel
    if (tactic_select_scores(L, a, b)) {  // (it fits: tactic_select_scores asked)
        cut3_dg<true, 128>(L, a, b, s);
        return;
    }
    if (select_from_parts(b)) {  // (a shape it does not fit: the kernels below)
        const int v = options().tactic_select;
        if (v == 3 ? cut3_dg<false, 0>(L, a, b, s) : cut3_dg<true, 0>(L, a, b, s))
            return;
    }
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
        const int optin = device_limits().smem_optin;
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


void tactic_select_init() {
    const int smem = int(select_smem(tactic_max_clusters()));
    set_dynamic_smem(select_kernel, smem, "Tactic's selection kernel");
    set_dynamic_smem(group_select_kernel<1>, smem, "Tactic's selection kernel");
    set_dynamic_smem(group_select_kernel<2>, smem, "Tactic's selection kernel");
    set_dynamic_smem(group_select_kernel<4>, smem, "Tactic's selection kernel");
    set_dynamic_smem(group_select_kernel<8>, smem, "Tactic's selection kernel");
}

}  // namespace cuda
}  // namespace tactic
