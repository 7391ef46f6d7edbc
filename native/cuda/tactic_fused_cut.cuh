// The fused step's cut (tactic_select 9: selection 4's cut at the head of the sparse attention
// kernel, tactic_gpu.cu), with two barriers between the blocks of a KV head and none after.
// Internal to native/cuda.
//
// Selection 4's cut in cut3_cut takes three: the histogram, the candidates, and then a third
// that publishes each slice's row count once its candidates are resolved (every block's piece
// of the list may span any slice). Here each block writes, before the second barrier, its
// slice's rows of the clusters above the cut's 12-bit prefix ("sure") and then those at it
// (its own candidates) to its region of the scratch, and publishes both counts. After the
// second barrier every block resolves all candidates itself (the same rule and arithmetic as
// cut3_cut's: taken iff the weight of higher keys, or equal keys at a lower index, leaves the
// cut short; the records carry each candidate's first row and tokens) and so knows the whole
// list without another exchange:
//   the always-attended tokens, then each slice's sure rows (from the scratch), then the
//   taken candidates' clusters in cluster order (their first rows and token counts from the
//   candidate records).
// The selected set is selection 4's; only the list's order differs. A crowd (more than kCand1
// clusters at the prefix: not all recorded) takes every cluster at the prefix, as 4 does: each
// slice's part is then its sure rows and its own candidates' rows.
// Measured where the old cut's time went (trace build, H200, 128K): docs/results/gpu_session12.md.
#pragma once

#include "tactic_cut.cuh"

namespace tactic {
namespace cuda {

// The list's layout after the cut, in the attention kernel's shared memory.
struct FusedCutShared {
    int pre[kSpMaxSlices + 1];   // the slices' parts: slice j's rows are pre[j] .. pre[j + 1] of the scratch part
    int cand_pre[kCand1 + 1];    // the taken candidates' rows before each (in cluster order)
    int cand_first[kCand1];      // their first rows (in Ks / Vs)
    int n_cand, n_fix, cb, ce;   // taken candidates; always-attended tokens; the clustered range cut at n
    int total;                   // the KV head's list length
};

// Block blk of KV head kvh (grid nsl x n_head_kv, every block resident): the cut of its slice of
// IT clusters a thread, the rows to rows[reg[blk] ..] (the KV head's scratch), the layout to fc.
// W: the KV head's workspace (bar, candidate count, the slices' counts, cut 0's histogram and
// candidates); s_h: kOneB floats of shared scratch (the caller's stream buffers).
template <int G, int IT>
__device__ void fused_cut(const TacticLayerDev &L, const int32_t *__restrict__ d_pos, float frac, float scale,
                          const float *__restrict__ cscore, const float *__restrict__ spart, int nbx, int32_t *W,
                          int nsl, int kvh, int blk, float *s_h, int32_t *rows, const int *s_reg,
                          FusedCutShared &fc) {
    static_assert(5 * kCand1 * 4 <= 204 * 1024, "the candidates fit the stream buffers (s_h)");
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int group = L.n_head / L.n_head_kv, h0 = kvh * group;
    int32_t *bar = W, *cand_n = W + 3, *sure_n = W + kC3Slices, *own_n = W + kC3Slices + kSpMaxSlices;
    float *cw = reinterpret_cast<float *>(W + kC3Head);  // cut 0: the level's bins, then the candidates
    float *cand = cw + kOneB;
    using IScan = cub::BlockScan<int, kSpThreads>;
    __shared__ typename IScan::TempStorage scan_tmp;
    __shared__ float s_lse[G], s_max[G], s_min[G], s_bound[2];
    const int C = L.n_clusters[kvh];
    const int32_t *coff = L.coff + int64_t(kvh) * (L.cmax + 1);
    const int total = C > 0 ? coff[C] - coff[0] : 0;
    const int per = (C + nsl - 1) / nsl, c_lo = blk * per, c_hi = min(C, c_lo + per);
    int first[IT], tok[IT];
    bool in[IT];
#pragma unroll
    for (int i = 0; i < IT; i++) {
        const int c = c_lo + tid * IT + i;
        in[i] = c < c_hi;
        first[i] = in[i] ? coff[c] : 0;
        tok[i] = in[i] ? coff[c + 1] - first[i] : 0;
    }
    for (int i = tid; i < kOneB; i += kSpThreads) s_h[i] = 0.f;  // block-local: before the wait
    pdl_wait();
    pdl_trigger();  // safe: the next kernel starts once every block of this one runs (the barriers need them all)
    const int tb = kvh * nsl + blk;  // (the trace's block)
    trace_mark(tb, 1);
    const int n = d_pos[0] + 1;
    const int need_tok = min(n, int(ceilf(frac * float(n))));
    const bool all = need_tok >= total;  // block-uniform (and KV-head-uniform)
    float v[IT][G];
#pragma unroll
    for (int i = 0; i < IT; i++)
#pragma unroll
        for (int j = 0; j < G; j++)
            v[i][j] = !in[i] || j >= group ? 0.f : cscore[int64_t(h0 + j) * L.cmax + c_lo + tid * IT + i];
    uint32_t key[IT];
    float above = 0.f;
    uint32_t pre = 0;
    bool sure[IT], mine[IT];  // above the cut's prefix; at it (a candidate)
    int slot[IT];             // a candidate's record (kCand1: none)
    if (!all) {
        // Per head the scoring blocks' partials (warp j: head j), merged in cut3_cut's order,
        // every load issued before the first is used.
        if (warp < G) {
            float m = -INFINITY, z = 0.f, mn = INFINITY;
            if (warp < group) {
                const float *pp = spart + int64_t(h0 + warp) * nbx * 3;
                for (int b0 = 0; b0 < nbx; b0 += 128) {
                    float mb[4], zb[4], nb[4];
#pragma unroll
                    for (int u = 0; u < 4; u++) {
                        const int bb = b0 + lane + 32 * u;
                        mb[u] = bb < nbx ? __ldcg(pp + bb * 3) : -INFINITY;
                        zb[u] = bb < nbx ? __ldcg(pp + bb * 3 + 1) : 0.f;
                        nb[u] = bb < nbx ? __ldcg(pp + bb * 3 + 2) : INFINITY;
                    }
#pragma unroll
                    for (int u = 0; u < 4; u++) {
                        mn = fminf(mn, nb[u]);
                        if (mb[u] == -INFINITY) continue;
                        const float mm = fmaxf(m, mb[u]);
                        z = (m == -INFINITY ? 0.f : z * expf(scale * (m - mm))) + zb[u] * expf(scale * (mb[u] - mm));
                        m = mm;
                    }
                }
            }
            trace_mark(tb, 16);  // (warp 0's partials in)
            warp_merge_partials(m, z, mn, scale);
            if (lane == 0) {
                s_max[warp] = m;
                s_lse[warp] = scale * m + logf(z);  // log sum |c| exp(scale s)
                s_min[warp] = mn;
            }
        }
        __syncthreads();
        if (tid == 0) {  // bounds of max_h (scale s_h - lse_h)
            float lo = -INFINITY, hi = -INFINITY;
            for (int j = 0; j < group && j < G; j++) {
                lo = fmaxf(lo, scale * s_min[j] - s_lse[j]);
                hi = fmaxf(hi, scale * s_max[j] - s_lse[j]);
            }
            s_bound[0] = lo;
            s_bound[1] = hi;
        }
        __syncthreads();
        trace_mark(tb, 2);
        const KeySpread spread(s_bound[0], s_bound[1]);
#pragma unroll
        for (int i = 0; i < IT; i++) {
            float x = -INFINITY;
#pragma unroll
            for (int j = 0; j < G; j++)
                if (j < group) x = fmaxf(x, scale * v[i][j] - s_lse[j]);
            key[i] = in[i] ? spread(x) >> 2 : 0u;
        }
        trace_mark(tb, 17);
#pragma unroll
        for (int i = 0; i < IT; i++)
            if (in[i] && tok[i] > 0) atomicAdd(&s_h[key[i] >> 18], float(tok[i]));
        __syncthreads();
        trace_mark(tb, 18);
        for (int i = tid; i < kOneB; i += kSpThreads)
            if (s_h[i] != 0.f) atomicAdd(&cw[i], s_h[i]);
        trace_mark(tb, 3);
        kv_barrier<true>(bar, nsl);
        trace_mark(tb, 4);
        pre = uint32_t(sp_find_digit<kOneB>(cw, float(need_tok), above));
#pragma unroll
        for (int i = 0; i < IT; i++) {
            const uint32_t pk = key[i] >> 18;
            sure[i] = in[i] && pk > pre;
            mine[i] = in[i] && pk == pre;
            slot[i] = mine[i] ? atomicAdd(cand_n, 1) : kCand1;  // (its value used after the rows: a round trip hidden)
        }
    } else {
#pragma unroll
        for (int i = 0; i < IT; i++) {
            sure[i] = in[i];
            mine[i] = false;
            slot[i] = kCand1;
        }
    }
    // This slice's sure rows, then its own candidates' rows, in cluster order, to its region
    // (each thread its clusters' rows), its counts published; the candidates recorded (key,
    // tokens, cluster, first row).
    {
        int offs[IT], offc[IT], n_sure = 0, n_mine = 0;
#pragma unroll
        for (int i = 0; i < IT; i++) {
            offs[i] = sure[i] ? tok[i] : 0;
            offc[i] = mine[i] ? tok[i] : 0;
        }
        IScan(scan_tmp).ExclusiveSum(offs, offs, n_sure);
        __syncthreads();
        IScan(scan_tmp).ExclusiveSum(offc, offc, n_mine);
        int32_t *dst = rows + s_reg[blk];
#pragma unroll
        for (int i = 0; i < IT; i++)
            if (sure[i] || mine[i]) {
                int32_t *d = dst + (sure[i] ? offs[i] : n_sure + offc[i]);
                for (int j = 0; j < tok[i]; j++) d[j] = first[i] + j;
            }
#pragma unroll
        for (int i = 0; i < IT; i++)
            if (slot[i] < kCand1)
                reinterpret_cast<float4 *>(cand)[slot[i]] = make_float4(
                    __uint_as_float(key[i]), float(tok[i]), __int_as_float(c_lo + tid * IT + i), __int_as_float(first[i]));
        if (tid == 0) {
            sure_n[blk] = n_sure;
            own_n[blk] = n_mine;
        }
    }
    trace_mark(tb, 5);
    kv_barrier<true>(bar, (all ? 1 : 2) * nsl);  // the rows, counts and candidates of every slice
    trace_mark(tb, 6);
    // One round of loads: the candidate count, the slices' counts (warp 0) and the first
    // kSpThreads candidate records (read before the count is known: slots past it are ignored).
    // (one read of the count a block, not one a warp: 128 blocks' warps at one L2 line)
    __shared__ int s_m;
    const float4 rec0 = all ? make_float4(0.f, 0.f, 0.f, 0.f) : __ldcg(reinterpret_cast<const float4 *>(cand) + tid);
    int r_sure = 0, r_own = 0;
    if (warp == 0) {
        if (lane < nsl) {
            r_sure = __ldcg(sure_n + lane);
            r_own = __ldcg(own_n + lane);
        }
        if (lane == 0) s_m = all ? 0 : __ldcg(cand_n);
    }
    __syncthreads();
    const int m = s_m;
    const bool crowd = m > kCand1;
    if (!all)
        for (int i = blk * kSpThreads + tid; i < kOneB; i += nsl * kSpThreads) cw[i] = 0.f;  // all have read it
    if (warp == 0) {  // the slices' parts and their offsets
        int r = r_sure + (crowd ? r_own : 0);
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const int u = __shfl_up_sync(0xffffffffu, r, o);
            if (lane >= o) r += u;
        }
        if (lane < nsl) fc.pre[lane + 1] = r;
        if (lane == 0) {
            fc.pre[0] = 0;
            const int cb = min(L.range[0], n), ce = min(max(L.range[1], cb), n);
            fc.cb = cb;
            fc.ce = ce;
            fc.n_fix = cb + (n - ce);
        }
    }
    __shared__ int s_nt;
    if (tid == 0) s_nt = 0;
    if (!crowd && m > 0) {  // block-uniform: every candidate resolved here, the taken in cluster order
        float *sk = s_h, *sw = s_h + kCand1;  // keys (bits), tokens; clusters, first rows, taken
        int *sc = reinterpret_cast<int *>(s_h + 2 * kCand1), *sf = sc + kCand1, *st = sf + kCand1;
        for (int j = tid; j < m; j += kSpThreads) {
            const float4 r = j < kSpThreads ? rec0 : __ldcg(reinterpret_cast<const float4 *>(cand) + j);
            sk[j] = r.x;
            sw[j] = r.y;
            sc[j] = __float_as_int(r.z);
            sf[j] = __float_as_int(r.w);
        }
        __syncthreads();
        const float need = float(need_tok);
        int taken = 0;
        for (int j = tid; j < m; j += kSpThreads) {
            const uint32_t kj = __float_as_uint(sk[j]);
            const int cj = sc[j];
            float before = 0.f;
            for (int t = 0; t < m; t++) {
                const uint32_t kt = __float_as_uint(sk[t]);
                if (kt > kj || (kt == kj && sc[t] < cj)) before += sw[t];
            }
            st[j] = above + before < need;
            taken += st[j];
        }
        if (taken) atomicAdd(&s_nt, taken);
        __syncthreads();
        trace_mark(tb, 8);
        for (int j = tid; j < m; j += kSpThreads) {  // each taken one's place: the taken at lower clusters
            if (!st[j]) continue;
            const int cj = sc[j];
            int rank = 0;
            for (int t = 0; t < m; t++) rank += st[t] && sc[t] < cj;
            fc.cand_first[rank] = sf[j];
            fc.cand_pre[rank + 1] = int(sw[j]);  // its tokens, summed below
        }
    }
    __syncthreads();
    const int nt = s_nt;
    trace_mark(tb, 13);
    trace_value(tb, 14, uint64_t(m) + 1);  // (+ 1: zero reads as not written)
    trace_value(tb, 15, uint64_t(nt) + 1);
    {
        constexpr int CI = kCand1 / kSpThreads;
        int r[CI];
#pragma unroll
        for (int i = 0; i < CI; i++) r[i] = tid * CI + i < nt ? fc.cand_pre[tid * CI + i + 1] : 0;
        IScan(scan_tmp).InclusiveSum(r, r);
#pragma unroll
        for (int i = 0; i < CI; i++)
            if (tid * CI + i < nt) fc.cand_pre[tid * CI + i + 1] = r[i];
    }
    if (tid == 0) {
        fc.cand_pre[0] = 0;
        fc.n_cand = nt;
    }
    __syncthreads();
    if (tid == 0) fc.total = fc.n_fix + fc.pre[nsl] + fc.cand_pre[nt];
    __syncthreads();
    trace_mark(tb, 7);
}

}  // namespace cuda
}  // namespace tactic
