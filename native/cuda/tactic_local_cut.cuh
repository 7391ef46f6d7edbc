// The fused step's cut without barriers (tactic_select 11): every block of a KV head cuts the
// whole KV head itself, from the scores in the L2, and writes only its own piece of the list.
// Internal to native/cuda.
//
// Selection 9's cut (tactic_fused_cut.cuh) splits the clusters into slices, one a block, and
// pays for it with two barriers between the blocks and the L2 round trips around them (~11.7
// us of a 40.9 us step at 128K / 10% on the H200; docs/results/gpu_session12.md). Here each
// block reads all C keys' scores (C x group floats: 128 KB at 128K for the 8B shape) and cuts
// them in shared memory with selection 4's arithmetic: the same keys (group_key_bounds, the same
// spread), the same 12-bit histogram of tokens, digit, candidates at the digit (taken iff the
// weight of higher keys, or equal keys at a lower cluster, leaves the cut short) and crowd rule
// (more than kCand1 candidates: all taken). So the selected set is selection 4's; the list is
// the always-attended tokens, then the selected clusters' rows in cluster order. Block blk of
// nsl writes the list's piece blk of nsl equal pieces (as the stream kernel attends it).
#pragma once

#include "tactic_fused_cut.cuh"

namespace tactic {
namespace cuda {

constexpr int kLocalMaxClusters = 16384;  // clusters a KV head: keys and offsets in the stream buffers
// The shared scratch the local cut uses (bytes, in the stream buffers): keys (then the
// selected tokens' starts), the cluster offsets, the bins, the candidates.
constexpr size_t kLocalCutSmem = 4 * size_t(kLocalMaxClusters) + 4 * size_t(kLocalMaxClusters + 4) +
                                 4 * size_t(kOneB) + 16 * size_t(kCand1);

// out: the list's length, the always-attended tokens, the clustered range's cb and ce.
template <int G>
__device__ void local_cut(const TacticLayerDev &L, const int32_t *__restrict__ d_pos, float frac, float scale,
                          const float *__restrict__ cscore, const float *__restrict__ spart, int nbx, int nsl, int kvh,
                          int blk, float *s_h, int32_t *__restrict__ list, int *out) {
    static_assert(kLocalCutSmem <= 204 * 1024, "the local cut fits the stream buffers (s_h)");
    constexpr int NT = kSpThreads;
    const int tid = threadIdx.x;
    const int group = L.n_head / L.n_head_kv, h0 = kvh * group;
    uint32_t *s_key = reinterpret_cast<uint32_t *>(s_h);                        // [C]; then each cluster's start
    int *s_off = reinterpret_cast<int *>(s_h + kLocalMaxClusters);               // [C + 1]: coff
    float *s_bin = s_h + 2 * kLocalMaxClusters + 4;                              // [kOneB]
    float4 *s_cand = reinterpret_cast<float4 *>(s_bin + kOneB);                  // [kCand1]: key, tokens, cluster
    __shared__ float s_lse[G], s_bound[2];
    __shared__ int s_m;
    const int C = min(L.n_clusters[kvh], kLocalMaxClusters);  // (the launch checks cmax <= kLocalMaxClusters)
    const int32_t *coff = L.coff + int64_t(kvh) * (L.cmax + 1);
    // The layout and the bins: static data and block-local, before the wait.
    for (int c = tid; c <= C; c += NT) s_off[c] = coff[c];
    for (int i = tid; i < kOneB; i += NT) s_bin[i] = 0.f;
    if (tid == 0) s_m = 0;
    pdl_wait();
    pdl_trigger();  // (no barrier between this kernel's blocks: the next kernel waits for it all the same)
    const int tb = kvh * nsl + blk;  // (the trace's block)
    trace_mark(tb, 1);
    __syncthreads();
    const int n = d_pos[0] + 1;
    const int need_tok = min(n, int(ceilf(frac * float(n))));
    const int total = C > 0 ? s_off[C] - s_off[0] : 0;
    const bool all = need_tok >= total;  // block-uniform (and KV-head-uniform)
    uint32_t pre = 0;
    bool crowd = false;
    const int warp = tid / 32, lane = tid % 32;
    if (!all) {
        // The scores, UN clusters a thread a round (coalesced: cluster c0 + u NT), the first
        // round's loads in flight while the partials are merged.
        constexpr int UN = G >= 8 ? 8 : G >= 4 ? 16 : 32;
        float v[UN][G];
        auto load = [&](int c0) {
#pragma unroll
            for (int u = 0; u < UN; u++)
#pragma unroll
                for (int j = 0; j < G; j++) {
                    const int c = c0 + u * NT;
                    v[u][j] = c < C && j < group ? __ldcg(cscore + int64_t(h0 + j) * L.cmax + c) : 0.f;
                }
        };
        load(tid);
        group_key_bounds<G>(spart, nbx, h0, group, scale, tb, s_lse, s_bound);
        const KeySpread spread(s_bound[0], s_bound[1]);
        // Keys (as fused_cut computes them) and the histogram of tokens by their top 12 bits; the
        // lanes of a warp at one bin add their tokens first (one shared atomic a bin a warp).
        for (int c0 = tid - lane; c0 < C; c0 += UN * NT) {  // (warp-uniform; lane's clusters c0 + lane + u NT)
            if (c0 != tid - lane) load(c0 + lane);
#pragma unroll
            for (int u = 0; u < UN; u++) {
                const int c = c0 + lane + u * NT;
                uint32_t bin = 0xffffffffu;
                int t = 0;
                if (c < C) {
                    float x = -INFINITY;
#pragma unroll
                    for (int j = 0; j < G; j++)
                        if (j < group) x = fmaxf(x, scale * v[u][j] - s_lse[j]);
                    const uint32_t k = spread(x) >> 2;
                    s_key[c] = k;
                    bin = k >> 18;
                    t = s_off[c + 1] - s_off[c];
                }
                const unsigned peers = __match_any_sync(0xffffffffu, bin);
                const unsigned sum = __reduce_add_sync(peers, unsigned(t));
                if (bin != 0xffffffffu && sum > 0 && lane == __ffs(peers) - 1) atomicAdd(&s_bin[bin], float(sum));
            }
        }
        trace_mark(tb, 17);
        __syncthreads();
        float above = 0.f;
        pre = uint32_t(sp_find_digit<kOneB, true>(s_bin, float(need_tok), above));
        trace_mark(tb, 4);
        // The candidates: the clusters at the digit.
        for (int c = tid; c < C; c += NT)
            if ((s_key[c] >> 18) == pre) {
                const int slot = atomicAdd(&s_m, 1);
                if (slot < kCand1)
                    s_cand[slot] = make_float4(__uint_as_float(s_key[c]), float(s_off[c + 1] - s_off[c]),
                                               __int_as_float(c), 0.f);  // (w unused)
            }
        __syncthreads();
        const int m = s_m;
        crowd = m > kCand1;
        if (!crowd) {  // each taken candidate marked in its key's bit 31 (keys have 30 bits)
            const float need = float(need_tok);
            for (int j = tid; j < m; j += NT) {
                const float4 rj = s_cand[j];
                const uint32_t kj = __float_as_uint(rj.x);
                const int cj = __float_as_int(rj.z);
                float before = 0.f;
                for (int t = 0; t < m; t++) {
                    const float4 rt = s_cand[t];
                    const uint32_t kt = __float_as_uint(rt.x);
                    if (kt > kj || (kt == kj && __float_as_int(rt.z) < cj)) before += rt.y;
                }
                if (above + before < need) s_key[cj] = kj | 0x80000000u;
            }
        }
        __syncthreads();
        trace_mark(tb, 5);
    }
    // The selected tokens scanned in cluster order, each cluster's start in the selected part
    // replacing its key: warp w the clusters [w cpw, (w + 1) cpw), 32 at a time, then each warp's
    // offset added.
    auto taken = [&](int c) {
        if (all) return true;
        const uint32_t k = s_key[c], p = (k & 0x7fffffffu) >> 18;
        return p > pre || (p == pre && (crowd || (k >> 31) != 0));
    };
    __shared__ int s_wsum[kSpThreads / 32];
    constexpr int NW = NT / 32;
    const int cpw = ((C + NW - 1) / NW + 31) / 32 * 32, w_lo = min(C, warp * cpw), w_hi = min(C, w_lo + cpw);
    int carry = 0;
    for (int c0 = w_lo; c0 < w_hi; c0 += 32) {
        const int c = c0 + lane;
        const int val = c < w_hi && taken(c) ? s_off[c + 1] - s_off[c] : 0;
        int inc = val;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const int y = __shfl_up_sync(0xffffffffu, inc, o);
            if (lane >= o) inc += y;
        }
        if (c < w_hi) s_key[c] = uint32_t(carry + inc - val);  // (its own cluster's key, read above)
        carry += __shfl_sync(0xffffffffu, inc, 31);
    }
    if (lane == 0) s_wsum[warp] = carry;
    __syncthreads();
    int off = 0, chosen = 0;
    for (int w = 0; w < NW; w++) {
        off += w < warp ? s_wsum[w] : 0;
        chosen += s_wsum[w];
    }
    if (off > 0)
        for (int c = w_lo + lane; c < w_hi; c += 32) s_key[c] += uint32_t(off);
    const int cb = min(L.range[0], n), ce = min(max(L.range[1], cb), n), n_fix = cb + (n - ce);
    const int len = n_fix + chosen;
    __syncthreads();
    // This block's piece of the list (the stream kernel's piece blk of nsl).
    const int nk = min(nsl, len);
    const int s0 = blk < nk ? int(int64_t(len) * blk / nk) : 0, s1 = blk < nk ? int(int64_t(len) * (blk + 1) / nk) : 0;
    for (int t = s0 + tid; t < s1; t += NT) {
        int code;
        if (t < n_fix) {
            code = -1 - (t < cb ? t : ce + (t - cb));
        } else {  // the cluster holding selected token u: the last whose start is at most u
            const int u = t - n_fix;
            int lo = 0, hi = C - 1;
            while (lo < hi) {
                const int mid = (lo + hi + 1) / 2;
                if (int(s_key[mid]) <= u) lo = mid;
                else hi = mid - 1;
            }
            code = s_off[lo] + (u - int(s_key[lo]));
        }
        list[t] = code;
    }
    __threadfence_block();  // the piece, before this block's threads read it back (the stream kernel)
    __syncthreads();
    trace_mark(tb, 9);
    if (tid == 0) {
        out[0] = len;
        out[1] = n_fix;
        out[2] = cb;
        out[3] = ce;
    }
    __syncthreads();
}

}  // namespace cuda
}  // namespace tactic
