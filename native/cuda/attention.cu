// Decode attention of one token over an f16 KV cache [n_head_kv][n_ctx][D], split
// along the keys FlashDecoding-style: a grid of (KV head x head group, split) blocks
// each folds its share of the tokens into a running softmax (max m, sum l, output
// acc), and a second kernel merges the splits. The same kernel walks either a range
// [lo, n) or a per-KV-head index list (Tactic's selected tokens).
//
// Inside a block, each warp takes tiles of 32 tokens. A token row of D halves is read
// by D/8 lanes, 16 bytes each (several tokens per warp step when D < 256):
//   1. scores: q.k for every query head of the group (partial dots, then a shuffle
//      reduction over the D/8 lanes), into shared memory;
//   2. softmax: lane t takes token t of the tile: tile max, rescale, p = exp(s - m);
//   3. values: acc += p v, each lane holding its 8 dims for every head.
// The query heads sharing a KV head (GQA) are handled together, so K and V are read
// once per KV head.
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cuda_backend.h"
#include "cuda_ops.cuh"
#include "cuda_util.cuh"
#include "pdl.cuh"

namespace tactic {
namespace cuda {

namespace {

constexpr int kAttnWarps = 4;
constexpr int kTile = 32;

// Asks for the cache lines of one token row (D halves) to be brought into L2.
template <int D>
__device__ __forceinline__ void prefetch_row(const __half *row) {
#pragma unroll
    for (int i = 0; i < D * 2 / 128; i++) asm volatile("prefetch.global.L2 [%0];" ::"l"(row + i * 64));
}

__device__ __forceinline__ void half8_to_float(const uint4 &w, float *f) {
    const uint32_t ws[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 t = __half22float2(*reinterpret_cast<const __half2 *>(&ws[i]));
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}

struct AttnDev {
    const float *q;
    const __half *k, *v;
    int n_ctx, n_head, n_head_kv, n_hgroups;
    int lo, len_full;                 // range mode: positions j -> token lo + j, j < len_full
    const int32_t *idx;               // list mode (non-null): token idx[off[g] + j]
    const int64_t *off;
    int split_len;
    const int32_t *d_pos;             // non-null: range mode over [max(0, pos + 1 - window), pos + 1) with
    int window;                       //   pos = *d_pos read on the device (one CUDA graph serves all lengths)
    float scale;
    int prefetch;                     // 1: prefetch this tile's V and the next tile's K into L2
    float *part_acc;                  // [split][n_head][D]
    float *part_ml;                   // [split][n_head][2]
};

template <int D, int G>
__global__ void __launch_bounds__(kAttnWarps * 32) attn_split_kernel(AttnDev a) {
    pdl_wait();
    pdl_trigger();
    constexpr int LPT = D / 8;        // lanes per token row
    constexpr int TPW = 32 / LPT;     // tokens per warp step
    constexpr int STEPS = kTile / TPW;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int slot = lane / LPT, dl = lane % LPT;

    const int kvh = blockIdx.x / a.n_hgroups, hg = blockIdx.x % a.n_hgroups;
    const int group = a.n_head / a.n_head_kv;
    const int h0 = kvh * group + hg * G;
    const int nh = min(G, group - hg * G);

    const int32_t *list = nullptr;
    int lo = a.lo, len = a.len_full, split_len = a.split_len;
    if (a.d_pos) {
        const int n = a.d_pos[0] + 1;
        lo = a.window > 0 ? max(0, n - a.window) : 0;
        len = n - lo;
        split_len = ((len + int(gridDim.y) - 1) / int(gridDim.y) + kTile - 1) / kTile * kTile;
    }
    if (a.idx) {
        list = a.idx + a.off[kvh];
        len = int(a.off[kvh + 1] - a.off[kvh]);
    }
    const int s_begin = blockIdx.y * split_len;
    const int s_end = min(len, s_begin + split_len);
    const __half *K0 = a.k + int64_t(kvh) * a.n_ctx * D, *V0 = a.v + int64_t(kvh) * a.n_ctx * D;
    const __half *K = K0 + dl * 8, *V = V0 + dl * 8;

    float qr[G][8], acc[G][8], m[G], l[G];
#pragma unroll
    for (int h = 0; h < G; h++) {
        m[h] = -INFINITY;
        l[h] = 0.f;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            qr[h][i] = h < nh ? a.q[int64_t(h0 + h) * D + dl * 8 + i] * a.scale : 0.f;
            acc[h][i] = 0.f;
        }
    }

    __shared__ float s_p[kAttnWarps][G][kTile];
    for (int t0 = s_begin + warp * kTile; t0 < s_end; t0 += kAttnWarps * kTile) {
        const int n_in = min(kTile, s_end - t0);
        // Lane t fetches the token of tile slot t once; steps read it by shuffle.
        const int my_pos = t0 + min(lane, n_in - 1);
        const int my_tok = list ? list[my_pos] : lo + my_pos;
        // Optional (attn_prefetch): bring V in while the scores are computed, and the
        // next tile's K while the values are summed. Measured no faster on an H200.
        const int next_t0 = t0 + kAttnWarps * kTile;
        int next_tok = -1;
        if (a.prefetch) {
            prefetch_row<D>(V0 + int64_t(my_tok) * D);
            if (next_t0 + lane < s_end) next_tok = list ? list[next_t0 + lane] : lo + next_t0 + lane;
        }

        // 1. scores
#pragma unroll
        for (int s0 = 0; s0 < STEPS; s0 += 8) {
            uint4 kw[8];
#pragma unroll
            for (int s = 0; s < 8; s++) {
                if (s0 + s < STEPS) {
                    const int tok = __shfl_sync(0xffffffffu, my_tok, (s0 + s) * TPW + slot);
                    kw[s] = *reinterpret_cast<const uint4 *>(K + int64_t(tok) * D);
                }
            }
#pragma unroll
            for (int s = 0; s < 8; s++) {
                if (s0 + s < STEPS) {
                    float kf[8];
                    half8_to_float(kw[s], kf);
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
        if (next_tok >= 0) prefetch_row<D>(K0 + int64_t(next_tok) * D);
        __syncwarp();
        // 2. online softmax over the tile, lane = token
#pragma unroll
        for (int h = 0; h < G; h++) {
            const float sv = s_p[warp][h][lane];
            const float m_new = fmaxf(m[h], warp_max(sv));
            const float alpha = expf(m[h] - m_new);  // m = -inf at first: 0
            const float p = expf(sv - m_new);         // padding slots: 0
            l[h] = l[h] * alpha + warp_sum(p);
            m[h] = m_new;
            s_p[warp][h][lane] = p;
#pragma unroll
            for (int i = 0; i < 8; i++) acc[h][i] *= alpha;
        }
        __syncwarp();
        // 3. values
#pragma unroll
        for (int s0 = 0; s0 < STEPS; s0 += 8) {
            uint4 vw[8];
#pragma unroll
            for (int s = 0; s < 8; s++) {
                if (s0 + s < STEPS) {
                    const int tok = __shfl_sync(0xffffffffu, my_tok, (s0 + s) * TPW + slot);
                    vw[s] = *reinterpret_cast<const uint4 *>(V + int64_t(tok) * D);
                }
            }
#pragma unroll
            for (int s = 0; s < 8; s++) {
                if (s0 + s < STEPS) {
                    float vf[8];
                    half8_to_float(vw[s], vf);
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
    }

    // The token slots of a warp each hold part of the sum: add them up.
#pragma unroll
    for (int h = 0; h < G; h++)
#pragma unroll
        for (int i = 0; i < 8; i++)
#pragma unroll
            for (int o = LPT; o < 32; o <<= 1) acc[h][i] += __shfl_xor_sync(0xffffffffu, acc[h][i], o);

    // Merge the warps of the block, then write this split's partial result.
    __shared__ float s_acc[kAttnWarps][G][D];
    __shared__ float s_m[kAttnWarps][G], s_l[kAttnWarps][G];
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
    for (int e = threadIdx.x; e < nh * D; e += kAttnWarps * 32) {
        const int h = e / D, d = e % D;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < kAttnWarps; w++) M = fmaxf(M, s_m[w][h]);
        float A = 0.f, L = 0.f;
        if (M != -INFINITY) {
#pragma unroll
            for (int w = 0; w < kAttnWarps; w++) {
                const float f = expf(s_m[w][h] - M);
                A = fmaf(f, s_acc[w][h][d], A);
                L = fmaf(f, s_l[w][h], L);
            }
        }
        const int64_t row = int64_t(blockIdx.y) * a.n_head + h0 + h;
        a.part_acc[row * D + d] = A;
        if (d == 0) {
            a.part_ml[row * 2] = M;
            a.part_ml[row * 2 + 1] = L;
        }
    }
}

// out[h] = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s; zeros for an empty list.
__global__ void attn_merge_kernel(const float *__restrict__ part_acc, const float *__restrict__ part_ml,
                                  int n_splits, int n_head, int D, float *__restrict__ out) {
    pdl_wait();
    pdl_trigger();
    const int h = blockIdx.x;
    float M = -INFINITY;
    for (int s = 0; s < n_splits; s++) M = fmaxf(M, part_ml[(int64_t(s) * n_head + h) * 2]);
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float A = 0.f, L = 0.f;
        if (M != -INFINITY) {
            for (int s = 0; s < n_splits; s++) {
                const int64_t row = int64_t(s) * n_head + h;
                const float f = expf(part_ml[row * 2] - M);
                A = fmaf(f, part_acc[row * D + d], A);
                L = fmaf(f, part_ml[row * 2 + 1], L);
            }
        }
        out[int64_t(h) * D + d] = L > 0.f ? A / L : 0.f;
    }
}

template <int D, int G>
void launch_split(const AttnDev &a, int n_splits, cudaStream_t stream = 0) {
    dim3 grid(unsigned(a.n_head_kv * a.n_hgroups), unsigned(n_splits));
    launch_pdl(attn_split_kernel<D, G>, grid, dim3(kAttnWarps * 32), 0, stream, a);
}

// Resident blocks per multiprocessor of the split kernel for (D, G).
template <int D>
int occupancy_d(int gmax) {
    int n = 0;
    switch (gmax) {
        case 1: TACTIC_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, attn_split_kernel<D, 1>, kAttnWarps * 32, 0)); break;
        case 2: TACTIC_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, attn_split_kernel<D, 2>, kAttnWarps * 32, 0)); break;
        default: TACTIC_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, attn_split_kernel<D, 4>, kAttnWarps * 32, 0)); break;
    }
    return std::max(1, n);
}

template <int D>
void launch_split_d(const AttnDev &a, int n_splits, int gmax, cudaStream_t stream = 0) {
    switch (gmax) {
        case 1: launch_split<D, 1>(a, n_splits, stream); break;
        case 2: launch_split<D, 2>(a, n_splits, stream); break;
        default: launch_split<D, 4>(a, n_splits, stream); break;
    }
}

int group_max(int group) { return group <= 1 ? 1 : group <= 2 ? 2 : 4; }

}  // namespace

void attention(const AttentionArgs &in) {
    require_device();
    const int D = in.head_dim, group = in.n_head / in.n_head_kv;
    TACTIC_CHECK(D == 64 || D == 128 || D == 256, TACTIC_ERR_UNSUPPORTED,
                 "CUDA attention: head_dim must be 64, 128 or 256");
    // Query heads per block: the GQA group, in pieces of at most 4 (8 would spill
    // registers; a larger group reads its K/V rows once per piece, mostly from L2).
    const int gmax = group_max(group);
    const int n_hgroups = (group + gmax - 1) / gmax;

    int64_t max_len = 0, n_idx = 0;
    if (in.idx) {
        n_idx = in.offsets[in.n_head_kv];
        for (int g = 0; g < in.n_head_kv; g++) max_len = std::max<int64_t>(max_len, in.offsets[g + 1] - in.offsets[g]);
    } else {
        max_len = in.n - in.lo;
    }
    // As many blocks as the GPU holds at once (one full wave: with more, a partial
    // last wave leaves most multiprocessors idle), each a whole number of tiles.
    const int per_round = kAttnWarps * kTile;
    int n_splits = options().attn_splits;
    if (n_splits <= 0) {
        const int occ = D == 64 ? occupancy_d<64>(gmax) : D == 128 ? occupancy_d<128>(gmax) : occupancy_d<256>(gmax);
        const int64_t blocks_per_split = int64_t(in.n_head_kv) * n_hgroups;
        const int64_t want = std::max<int64_t>(1, int64_t(occ) * sm_count() / blocks_per_split);
        n_splits = int(std::min<int64_t>(want, std::max<int64_t>(1, (max_len + per_round - 1) / per_round)));
    }
    const bool mma = use_decode_mma(D) && !in.idx;
    if (mma && options().attn_splits <= 0) n_splits = decode_attention_mma_splits(in.n_head, in.n_head_kv, D, max_len);
    int64_t split_len = std::max<int64_t>(1, (max_len + n_splits - 1) / n_splits);
    split_len = (split_len + kTile - 1) / kTile * kTile;
    if (!mma) n_splits = int(std::max<int64_t>(1, (max_len + split_len - 1) / split_len));

    const size_t kv_bytes = sizeof(uint16_t) * size_t(in.n_head_kv) * size_t(in.n_ctx) * size_t(D);
    const int copies = bench_copies(2 * kv_bytes);
    std::vector<DevBuf> d_k, d_v;
    for (int i = 0; i < copies; i++) {
        d_k.emplace_back(kv_bytes);
        d_k.back().upload(in.k, kv_bytes);
        d_v.emplace_back(kv_bytes);
        d_v.back().upload(in.v, kv_bytes);
    }
    const size_t q_bytes = sizeof(float) * size_t(in.n_head) * size_t(D);
    DevBuf d_q(q_bytes), d_out(q_bytes);
    DevBuf d_idx(sizeof(int32_t) * size_t(n_idx)), d_off(in.idx ? sizeof(int64_t) * size_t(in.n_head_kv + 1) : 0);
    DevBuf d_pacc(sizeof(float) * size_t(n_splits) * in.n_head * D), d_pml(sizeof(float) * size_t(n_splits) * in.n_head * 2);
    d_q.upload(in.q, q_bytes);
    if (in.idx) {
        d_idx.upload(in.idx, d_idx.size());
        d_off.upload(in.offsets, d_off.size());
    }
    d_out.poison();
    DevBuf d_done(sizeof(int32_t) * size_t(in.n_head));
    TACTIC_CU(cudaMemset(d_done.as<void>(), 0, d_done.size()));
    // TACTIC_ATTN_PROBE=file (tensor-core kernel, a measurement aid): the per-block timer
    // stamps of the last timed launch are appended to the file (6 a block: split blocks,
    // at most n_splits x n_head of them, then the merge's n_head).
    const char *probe_path = mma ? std::getenv("TACTIC_ATTN_PROBE") : nullptr;
    const size_t probe_n = size_t(n_splits + 1) * size_t(in.n_head) * 6;
    DevBuf d_probe(probe_path ? sizeof(uint64_t) * probe_n : 0);
    if (probe_path) TACTIC_CU(cudaMemset(d_probe.as<void>(), 0, d_probe.size()));

    AttnDev a{};
    a.q = d_q.as<float>();
    a.n_ctx = in.n_ctx;
    a.n_head = in.n_head;
    a.n_head_kv = in.n_head_kv;
    a.n_hgroups = n_hgroups;
    a.lo = in.lo;
    a.len_full = int(max_len);
    a.idx = in.idx ? d_idx.as<int32_t>() : nullptr;
    a.off = in.idx ? d_off.as<int64_t>() : nullptr;
    a.split_len = int(split_len);
    a.scale = in.scale;
    a.prefetch = options().attn_prefetch;
    a.part_acc = d_pacc.as<float>();
    a.part_ml = d_pml.as<float>();

    auto launch_on = [&](int copy, cudaStream_t stream) {
        a.k = d_k[copy].as<__half>();
        a.v = d_v[copy].as<__half>();
        if (mma) {
            DecodeAttn d;
            d.q = a.q;
            d.k = a.k;
            d.v = a.v;
            d.n_head = in.n_head;
            d.n_head_kv = in.n_head_kv;
            d.head_dim = D;
            d.n_ctx = in.n_ctx;
            d.n_splits = n_splits;
            d.part_acc = a.part_acc;
            d.part_ml = a.part_ml;
            d.out = d_out.as<float>();
            d.done = d_done.as<int32_t>();
            d.probe = probe_path ? d_probe.as<uint64_t>() : nullptr;
            attention_decode_mma_dev(d, in.lo, int(max_len), in.scale, stream);
            return;
        }
        switch (D) {
            case 64: launch_split_d<64>(a, n_splits, gmax, stream); break;
            case 128: launch_split_d<128>(a, n_splits, gmax, stream); break;
            default: launch_split_d<256>(a, n_splits, gmax, stream); break;
        }
        attn_merge_kernel<<<unsigned(in.n_head), std::min(D, 256), 0, stream>>>(a.part_acc, a.part_ml, n_splits,
                                                                               in.n_head, D, d_out.as<float>());
    };
    auto launch = [&](int copy) { launch_on(copy, 0); };
    launch(0);
    check_launch("attention kernels");
    d_out.download(in.out, q_bytes);
    if (options().bench_graph) bench_in_graph(launch_on, copies);
    else bench(launch, copies);
    // The timed launches' result (the copies hold the same data): what a caller checks is
    // then the last of many launches, e.g. with counters carried from launch to launch.
    if (options().bench_iters > 0) d_out.download(in.out, q_bytes);
    if (probe_path) {
        std::vector<uint64_t> st(probe_n);
        d_probe.download(st.data(), sizeof(uint64_t) * probe_n);
        if (FILE *f = std::fopen(probe_path, "a")) {
            std::fprintf(f, "probe kernel=%d n=%lld D=%d n_head=%d n_head_kv=%d splits=%d graph=%d\n", options().attn_kernel,
                         (long long)max_len, D, in.n_head, in.n_head_kv, n_splits, options().bench_graph);
            for (size_t i = 0; i < probe_n; i++) std::fprintf(f, "%llu%c", (unsigned long long)st[i], i + 1 < probe_n ? ' ' : '\n');
            std::fclose(f);
        }
    }
}

bool use_decode_mma(int head_dim) { return options().attn_kernel >= 1 && decode_mma_supported(head_dim); }

int decode_attention_splits(int n_head, int n_head_kv, int head_dim, int64_t max_len) {
    if (options().attn_splits > 0) return options().attn_splits;  // a benchmark's forced count
    if (use_decode_mma(head_dim)) return decode_attention_mma_splits(n_head, n_head_kv, head_dim, max_len);
    const int D = head_dim, group = n_head / n_head_kv, gmax = group_max(group);
    const int n_hgroups = (group + gmax - 1) / gmax;
    const int occ = D == 64 ? occupancy_d<64>(gmax) : D == 128 ? occupancy_d<128>(gmax) : occupancy_d<256>(gmax);
    const int64_t blocks_per_split = int64_t(n_head_kv) * n_hgroups;
    const int64_t want = std::max<int64_t>(1, int64_t(occ) * sm_count() / blocks_per_split);
    const int per_round = kAttnWarps * kTile;
    return int(std::min<int64_t>(want, std::max<int64_t>(1, (max_len + per_round - 1) / per_round)));
}

bool attention_decode_dev(const DecodeAttn &d, cudaStream_t stream) {
    if (use_decode_mma(d.head_dim)) return attention_decode_mma_dev(d, 0, 0, 1.f, stream);
    const int D = d.head_dim, group = d.n_head / d.n_head_kv, gmax = group_max(group);
    AttnDev a{};
    a.q = d.q;
    a.k = d.k;
    a.v = d.v;
    a.n_ctx = d.n_ctx;
    a.n_head = d.n_head;
    a.n_head_kv = d.n_head_kv;
    a.n_hgroups = (group + gmax - 1) / gmax;
    a.d_pos = d.d_pos;
    a.window = d.window;
    a.scale = 1.f;
    a.part_acc = d.part_acc;
    a.part_ml = d.part_ml;
    switch (D) {
        case 64: launch_split_d<64>(a, d.n_splits, gmax, stream); break;
        case 128: launch_split_d<128>(a, d.n_splits, gmax, stream); break;
        default: launch_split_d<256>(a, d.n_splits, gmax, stream); break;
    }
    launch_pdl(attn_merge_kernel, dim3(unsigned(d.n_head)), dim3(std::min(D, 256)), 0, stream, d.part_acc,
               d.part_ml, d.n_splits, d.n_head, D, d.out);
    return false;
}

}  // namespace cuda
}  // namespace tactic
