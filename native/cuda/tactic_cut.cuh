// The spread selection's device pieces (tactic_select 3-5 in tactic_select.cu; 9 and 10, the
// selection fused into the sparse attention, in tactic_gpu.cu): each KV head's clusters cut
// into slices, one block each, that meet at barriers in global memory. Internal to native/cuda.
#pragma once

#include <cub/block/block_scan.cuh>

#include <cstdint>

#include "cuda_ops.cuh"
#include "pdl.cuh"
#include "step_trace.cuh"
#include "tactic_gpu.cuh"
#include "tactic_kernels.cuh"

namespace tactic {
namespace cuda {

constexpr int kMinTokens = 64;  // BoundedConfig::min_init_tokens

// The cut's keys: values spread linearly over [lo, hi] as unsigned integers of the same
// order (ties only closer than (hi - lo) / 2^32; float bits would crowd one radix bin).
struct KeySpread {
    float lo, mul;  // key = (v - lo) * mul, truncated; 2^32 - 1024: rounding stays below 2^32
    __device__ KeySpread(float lo_, float hi_) : lo(lo_), mul(hi_ > lo_ ? 4294966272.f / (hi_ - lo_) : 0.f) {}
    __device__ uint32_t operator()(float v) const { return __float2uint_rz((v - lo) * mul); }
};

// ---- B + C spread over many blocks a KV head (options().tactic_select == 3) -------------
// The cuts of group_select_kernel (MODE 0: one a KV head, the group budget) and of
// select_kernel (MODE 1: one per query head at a forced fraction; MODE 2: per query head
// the 64-token cut and the mass cut), each KV head's clusters cut into nsl slices of at
// most kSpPer clusters, one block each (grid nsl x n_head_kv, all resident at once:
// cut3_slices checks). The blocks of a KV head meet at barriers (a counter in global
// memory) to add their histograms of a radix select into global memory, from which
// each block then finds the digit itself.
constexpr int kSpThreads = 256;
constexpr int kSpItems = 2;                      // consecutive clusters a thread
constexpr int kSpPer = kSpThreads * kSpItems;    // clusters a block
constexpr int kSpMaxSlices = 32;                 // cmax <= 16,384
constexpr int kSpB1 = 2048, kSpB2 = 2048;
constexpr int kSpMaxCuts = 16;                   // 2 x 8 heads

// Waits until every block of the KV head has arrived `target` times in all (counter ctr);
// what they wrote before is visible after (threadfence on both sides). LIGHT (the
// selections with one radix level): an acquire-release fence and a relaxed add to
// arrive, acquire loads to wait (the pattern of CUTLASS's GenericBarrier), not two
// sequentially consistent fences.
template <bool LIGHT = false>
__device__ __forceinline__ void kv_barrier(int32_t *ctr, int target) {
    __syncthreads();
    if (threadIdx.x == 0) {
        if (LIGHT) {
            asm volatile("fence.acq_rel.gpu;\n" ::: "memory");
            asm volatile("red.relaxed.gpu.global.add.s32 [%0], 1;\n" ::"l"(ctr) : "memory");
            int v = 0;
            while (true) {
                asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(v) : "l"(ctr) : "memory");
                if (v >= target) break;
                __nanosleep(32);
            }
        } else {
            __threadfence();
            atomicAdd(ctr, 1);
            while (*reinterpret_cast<volatile int32_t *>(ctr) < target) __nanosleep(32);
            __threadfence();
        }
    }
    __syncthreads();
}

// The scoring blocks' partials of one head merged across a warp: each lane's (m: max score,
// z: sum |c| exp(scale (s - m)), mn: min score) into the warp's, in one order for every cut
// that reads them (selection 4's cut3_cut and the fused step's), so both find the same keys.
__device__ __forceinline__ void warp_merge_partials(float &m, float &z, float &mn, float scale) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float mb = __shfl_xor_sync(0xffffffffu, m, o), zb = __shfl_xor_sync(0xffffffffu, z, o);
        mn = fminf(mn, __shfl_xor_sync(0xffffffffu, mn, o));
        const float mm = fmaxf(m, mb);
        if (mm != -INFINITY)
            z = (m == -INFINITY ? 0.f : z * expf(scale * (m - mm))) + (mb == -INFINITY ? 0.f : zb * expf(scale * (mb - mm)));
        m = mm;
    }
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
    static_assert(PER % 4 == 0, "16-byte loads of the bins (gh 16-byte aligned: kC3Head, kC3Cut, kSpB1)");
    float v[PER], sum = 0.f;
    const float4 *g4 = reinterpret_cast<const float4 *>(gh + NB - (tid + 1) * PER);  // this thread's bins
#pragma unroll
    for (int i = 0; i < PER / 4; i++) {  // highest first
        const float4 x = __ldcg(g4 + PER / 4 - 1 - i);
        v[4 * i] = x.w;
        v[4 * i + 1] = x.z;
        v[4 * i + 2] = x.y;
        v[4 * i + 3] = x.x;
    }
#pragma unroll
    for (int i = 0; i < PER; i++) sum += v[i];
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

// ---- B + C in three barriers (options().tactic_select == 3) ---------------------------
// Per cut: lse, the total mass and the keys' bounds come from the scoring kernel's
// per-block partials (cscore2_kernel's part), no barrier; keys are spread over those
// bounds (MODE 0: max_h of the heads' min / max of scale q.c - lse_h), the order as the
// one-block kernels', the resolution a little coarser (30 bits); two radix levels (11 + 11 bits of the 30-bit key)
// leave a few candidates per cut (the clusters whose 22-bit prefix is the cut's), which
// every block appends to a short global list (kCand a cut) and, after the third barrier,
// resolves itself exactly (ties in index order) for its own clusters; each block's rows
// go to the list at an offset taken from a per-KV-head cursor (an atomic add: the list's
// order is no longer the clusters' order, which the attention does not need), and the
// last block out writes the count. More than kCand candidates (a crowd of near-ties at
// 2^-22 of the keys' range): all of them are taken (never fewer tokens).
//
// ONE (options().tactic_select == 4): one radix level of 12 bits instead of two of 11, so
// one barrier fewer (each costs a fence, an L2 round trip and a wait for the slowest
// block, ~4 us at 128K); the candidates are the clusters at the cut's 12-bit prefix, up
// to kCand1 of them (spread keys make them a few dozen: 2^-12 of the keys' range).
constexpr int kCand = 512, kCand1 = 1024;
constexpr int kOneB = 4096;  // ONE's histogram bins
// Per KV head (ints): bar, exit, cursor, [kSpMaxCuts] candidate counts, [2 kSpMaxSlices] the
// fused step's slice counts (selection 10: rows + 1 once published, zero between steps;
// selection 9, tactic_fused_cut.cuh: sure rows, then own candidates' rows), then per cut the
// histograms and candidates (key, weight, cluster): two levels and kCand, or ONE's level
// and kCand1.
constexpr int kC3Slices = 3 + kSpMaxCuts;
constexpr int kC3Head = (kC3Slices + 2 * kSpMaxSlices + 3) / 4 * 4;  // (the cuts' bins 16-byte aligned)
constexpr int kC3Cut = std::max(kSpB1 + kSpB2 + 3 * kCand, kOneB + 4 * kCand1);  // (the fused cut: 4 a candidate)
__host__ __device__ constexpr int c3_ws_ints(int cuts) { return (kC3Head + cuts * kC3Cut + 3) / 4 * 4; }  // 16-byte rows

// FD > 0 (options().tactic_select == 5, head_dim FD): the block scores its own clusters
// [c_lo, c_hi) (no scoring kernel before it), as cscore_mma_kernel does (the same tensor-core
// fragments and order of k-steps, so the same scores): warp w takes clusters w * 64 ..,
// tiles of 8 (lane g = lane / 4 loads row g's 16 bytes at dims 32 j + 8 t), TCH tiles' loads
// in flight at once. Scores go to s_sc[head][cluster - c_lo] and to cscore; the block's
// partials (max, sum |c| exp(scale (s - max)), min) per head to spart[h][blk], which the
// blocks of the KV head then exchange at a barrier of their own (in place of the scoring
// kernel's partials).
template <int D, int G>
__device__ void block_scores(const TacticLayerDev &L, const float *__restrict__ q, int kvh, int c_lo, int c_hi,
                             float (*s_sc)[kSpPer], float *__restrict__ cscore) {
    constexpr int JC = D / 32, TILES = kSpPer / (8 * (kSpThreads / 32)), TCH = 16 / JC < 1 ? 1 : 16 / JC;
    static_assert(TILES % TCH == 0 || TCH > TILES, "tile chunks");
    const int group = L.n_head / L.n_head_kv, h0 = kvh * group;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const bool on = g < group;
    const __half *cent = L.cent + int64_t(kvh) * L.cmax * D + 8 * t;
    constexpr int CH = TCH < TILES ? TCH : TILES;
    uint4 w[CH][JC];
    auto load = [&](int t0) {
#pragma unroll
        for (int i = 0; i < CH; i++) {
            const int c = c_lo + warp * TILES * 8 + (t0 + i) * 8 + g;
#pragma unroll
            for (int j = 0; j < JC; j++)
                w[i][j] = c < c_hi ? __ldg(reinterpret_cast<const uint4 *>(cent + int64_t(c) * D + 32 * j))
                                   : make_uint4(0, 0, 0, 0);
        }
    };
    load(0);
    uint32_t qf[2 * JC][4];
    {
        const float *qg = q + int64_t(h0 + (on ? g : 0)) * D + 8 * t;
        const float z = on ? 1.f : 0.f;
#pragma unroll
        for (int j = 0; j < JC; j++) {
            const float4 x0 = *reinterpret_cast<const float4 *>(qg + 32 * j);
            const float4 x1 = *reinterpret_cast<const float4 *>(qg + 32 * j + 4);
            split_f16x2(z * x0.x, z * x0.y, qf[2 * j][0], qf[2 * j][1]);
            split_f16x2(z * x0.z, z * x0.w, qf[2 * j][2], qf[2 * j][3]);
            split_f16x2(z * x1.x, z * x1.y, qf[2 * j + 1][0], qf[2 * j + 1][1]);
            split_f16x2(z * x1.z, z * x1.w, qf[2 * j + 1][2], qf[2 * j + 1][3]);
        }
    }
#pragma unroll 1
    for (int t0 = 0; t0 < TILES; t0 += CH) {
        if (t0 > 0) load(t0);
#pragma unroll
        for (int i = 0; i < CH; i++) {
            float c4[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
            for (int j = 0; j < JC; j++) {
                mma16816(c4, qf[2 * j], w[i][j].x, w[i][j].y);
                mma16816(c4, qf[2 * j + 1], w[i][j].z, w[i][j].w);
            }
            const int r = warp * TILES * 8 + (t0 + i) * 8 + 2 * t;  // this lane's clusters r, r + 1 of the slice
            if (on) {
                s_sc[g][r] = c4[0] + c4[2];
                s_sc[g][r + 1] = c4[1] + c4[3];
                float *dst = cscore + int64_t(h0 + g) * L.cmax + c_lo + r;
                if (c_lo + r < c_hi) dst[0] = c4[0] + c4[2];
                if (c_lo + r + 1 < c_hi) dst[1] = c4[1] + c4[3];
            }
        }
    }
}

// The cut of one block's slice of a KV head (cut3_select_kernel's B, and the first part of
// the fused step, tactic_select 9 and 10): every cut resolved, sel[i] set for this thread's
// clusters c_lo + tid kSpItems + i (first[i], tok[i]: their first row and rows; in[i]: in the
// slice). W: the KV head's workspace. Shared memory from the caller (the fused step places it
// in its stream buffers): s_h the first level's bins (NB1 floats), s_sc G x kSpPer floats
// (FD > 0), s_take kSpPer bytes. Returns the barriers passed (a next one waits for (passed +
// 1) nsl arrivals).
struct Cut3Out {
    int C, c_lo, c_hi, n, passed;
};
template <int MODE, int G, bool ONE, int FD>
__device__ Cut3Out cut3_cut(const TacticLayerDev &L, const int32_t *__restrict__ d_pos, float frac, float p,
                            float scale, const float *__restrict__ q, float *cscore, float *spart, int nbx,
                            int32_t *W, int nsl, int kvh, int blk, float *s_h, float (*s_sc)[kSpPer],
                            uint8_t *s_take, int (&first)[kSpItems], int (&tok)[kSpItems], bool (&in)[kSpItems],
                            bool (&sel)[kSpItems]) {
    constexpr int NK = SpShape<MODE, G>::kKeys, NC = SpShape<MODE, G>::kCuts;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int group = L.n_head / L.n_head_kv, h0 = kvh * group;
    auto cut_on = [group](int k) { return MODE == 0 || k % NK < group; };
    int32_t *bar = W, *cand_n = W + 3;
    float *cutws = reinterpret_cast<float *>(W + kC3Head);  // [NC][kC3Cut]
    constexpr int NB1 = ONE ? kOneB : kSpB1, SH1 = ONE ? 18 : 19;  // the first level's bins and shift
    constexpr int CSH = ONE ? 18 : 8, NCAND = ONE ? kCand1 : kCand;  // the candidates' prefix shift, count
    constexpr int CAND_AT = ONE ? kOneB : kSpB1 + kSpB2;             // their place in a cut's workspace
    static_assert(3 * NCAND <= NB1, "candidates fit the histogram's shared memory");
    __shared__ float s_lse[G], s_max[G], s_tot[G], s_bound[NK][2];
    const int C = L.n_clusters[kvh];
    const int32_t *coff = L.coff + int64_t(kvh) * (L.cmax + 1);
    const int total = C > 0 ? coff[C] - coff[0] : 0;
    const int per = (C + nsl - 1) / nsl, c_lo = blk * per, c_hi = min(C, c_lo + per);
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
    const int tb = kvh * nsl + blk;  // (the trace's block)
    trace_mark(tb, 1);
    if (FD > 0) {
        block_scores<(FD > 0 ? FD : 128), G>(L, q, kvh, c_lo, c_hi, s_sc, cscore);
        __syncthreads();
    }
    const int n = d_pos[0] + 1;
    const int need_tok = MODE == 2 ? kMinTokens : min(n, int(ceilf(frac * float(n))));
    const bool all = need_tok >= total;  // block-uniform
#pragma unroll
    for (int i = 0; i < kSpItems; i++) {
        const int c = c_lo + tid * kSpItems + i, r = tid * kSpItems + i;
#pragma unroll
        for (int j = 0; j < G; j++)
            v[i][j] = !in[i] || j >= group ? 0.f : FD > 0 ? s_sc[FD > 0 ? j : 0][FD > 0 ? r : 0]
                                                          : cscore[int64_t(h0 + j) * L.cmax + c];
        sel[i] = all && in[i];
    }
    if (FD > 0 && !all) {  // the block's partials (warp j: head j), exchanged at a first barrier
        if (warp < group && warp < G) {
            float m = -INFINITY, mn = INFINITY, z = 0.f;
            for (int r = lane; r < c_hi - c_lo; r += 32) {
                m = fmaxf(m, s_sc[FD > 0 ? warp : 0][FD > 0 ? r : 0]);
                mn = fminf(mn, s_sc[FD > 0 ? warp : 0][FD > 0 ? r : 0]);
            }
            m = warp_max(m);
            mn = -warp_max(-mn);
            for (int r = lane; r < c_hi - c_lo; r += 32)
                z += float(coff[c_lo + r + 1] - coff[c_lo + r]) * expf(scale * (s_sc[FD > 0 ? warp : 0][FD > 0 ? r : 0] - m));
            z = warp_sum(z);
            if (lane == 0) {
                float *pp = spart + (int64_t(h0 + warp) * nbx + blk) * 3;
                pp[0] = m;
                pp[1] = z;
                pp[2] = mn;
            }
        }
        kv_barrier<ONE>(bar, nsl);
    }
    const int b0 = FD > 0 ? nsl : 0;  // barriers passed before the cuts'
    if (!all) {
        // Per head: the scoring blocks' partials merged (warp j: head j).
        if (warp < G) {
            float m = -INFINITY, z = 0.f, mn = INFINITY;
            if (warp < group) {
                const float *pp = spart + int64_t(h0 + warp) * nbx * 3;
                for (int b = lane; b < nbx; b += 32) {
                    const float mb = __ldcg(pp + b * 3), zb = __ldcg(pp + b * 3 + 1);
                    mn = fminf(mn, __ldcg(pp + b * 3 + 2));
                    if (mb == -INFINITY) continue;
                    const float mm = fmaxf(m, mb);
                    z = (m == -INFINITY ? 0.f : z * expf(scale * (m - mm))) + zb * expf(scale * (mb - mm));
                    m = mm;
                }
            }
            warp_merge_partials(m, z, mn, scale);
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
        trace_mark(tb, 2);
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
            sp_histogram<NB1>(kk, w, in, SH1, s_h, cutws + k * kC3Cut);
        }
        trace_mark(tb, 3);
        kv_barrier<ONE>(bar, b0 + 1 * nsl);
        trace_mark(tb, 4);
#pragma unroll
        for (int k = 0; k < NC; k++) {
            if (!cut_on(k)) continue;
            pre[k] = uint32_t(sp_find_digit<NB1>(cutws + k * kC3Cut, need_of(k), above[k]));
            if (!ONE) {  // the second level's histogram
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
        }
        if (!ONE) kv_barrier<ONE>(bar, b0 + 2 * nsl);
#pragma unroll
        for (int k = 0; k < NC; k++) {
            if (!cut_on(k)) continue;
            float *cw = cutws + k * kC3Cut;
            if (!ONE) {
                pre[k] = (pre[k] << 11) | uint32_t(sp_find_digit<kSpB2>(cw + kSpB1, need_of(k), above[k]));
                for (int i = blk * kSpThreads + tid; i < kSpB1; i += nsl * kSpThreads) cw[i] = 0.f;  // all have read it
            }
            // above the cut's prefix (22 bits; ONE: 12): in; at it: a candidate
            float *cand = cw + CAND_AT;
#pragma unroll
            for (int i = 0; i < kSpItems; i++) {
                if (!in[i]) continue;
                const uint32_t pk = key[i][k % NK] >> CSH;
                if (pk > pre[k]) sel[i] = true;
                else if (pk == pre[k]) {
                    const int slot = atomicAdd(&cand_n[k], 1);
                    if (slot < NCAND) {
                        cand[slot * 3] = __uint_as_float(key[i][k % NK]);
                        cand[slot * 3 + 1] = weight(i, k);
                        cand[slot * 3 + 2] = __int_as_float(c_lo + tid * kSpItems + i);
                    }
                }
            }
        }
        trace_mark(tb, 5);
        kv_barrier<ONE>(bar, b0 + (ONE ? 2 : 3) * nsl);
        trace_mark(tb, 6);
        // Each cut's candidates: one taken iff the weight before it (higher keys, equal
        // keys at a lower index) leaves the cut short; this block marks its own.
#pragma unroll
        for (int k = 0; k < NC; k++) {
            if (!cut_on(k)) continue;
            float *cw = cutws + k * kC3Cut;
            if (ONE)  // the level's histogram: all have read it
                for (int i = blk * kSpThreads + tid; i < kOneB; i += nsl * kSpThreads) cw[i] = 0.f;
            else
                for (int i = blk * kSpThreads + tid; i < kSpB2; i += nsl * kSpThreads) cw[kSpB1 + i] = 0.f;
            const float *cand = cw + CAND_AT;
            const int m = *reinterpret_cast<volatile int32_t *>(&cand_n[k]);
            for (int i = tid; i < kSpPer; i += kSpThreads) s_take[i] = 0;
            __syncthreads();
            if (m > NCAND) {  // a crowd: take every candidate (block-uniform)
#pragma unroll
                for (int i = 0; i < kSpItems; i++)
                    if (in[i] && (key[i][k % NK] >> CSH) == pre[k]) sel[i] = true;
                continue;
            }
            float *sk = s_h, *sw = s_h + NCAND;  // candidates staged: keys (as bits), weights, clusters
            int *sc = reinterpret_cast<int *>(s_h + 2 * NCAND);
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
    trace_mark(tb, 7);
    return {C, c_lo, c_hi, n, all ? 0 : (FD > 0 ? 1 : 0) + (ONE ? 2 : 3)};
}

// This block's chosen clusters' rows (first row + j), in cluster order, to dst[base ..]: base
// = base_of(rows) (thread 0 calls it with the block's row total). s_h: 3 kSpPer ints of
// scratch. Returns the block's row total (every thread).
template <class BaseOf>
__device__ int cut3_write_rows(const bool (&sel)[kSpItems], const int (&first)[kSpItems], const int (&tok)[kSpItems],
                               int32_t *dst, BaseOf base_of, float *s_h) {
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    using Scan = cub::BlockScan<int, kSpThreads>;
    __shared__ typename Scan::TempStorage row_tmp;
    __shared__ int s_base, s_n;
    int off[kSpItems], my_rows = 0;
#pragma unroll
    for (int i = 0; i < kSpItems; i++) off[i] = sel[i] ? tok[i] : 0;
    Scan(row_tmp).ExclusiveSum(off, off, my_rows);
    if (tid == 0) s_base = base_of(my_rows);
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
        for (int j = lane; j < e_sz[e]; j += 32) dst[e_off[e] + j] = e_first[e] + j;
    __syncthreads();  // s_h, s_n free again
    return my_rows;
}

}  // namespace cuda
}  // namespace tactic
