// Decode attention (one query token, full or windowed range of keys) on tensor cores,
// split along the keys FlashDecoding-style: options().attn_kernel == 1, or 2 with the
// merge of the splits done by the last block of each head (attention.cu's FMA kernel is 0);
// 3-11, 19, 20 and 29-31 are variants (kVariants below: how the K/V chunks are copied in,
// how the splits are merged, which chunks a split takes). The gaps (12-18, 21-28) are
// variants removed after they were measured slower or no faster (docs/results/at_s13.md).
// attn_decode_mma_kernel (1-11): grid (KV head x head piece, split); each block streams its split's
// keys in chunks of 16 tokens, and its NW warps take the chunks in turn, each warp with
// its own cp.async pipeline of STAGES chunks of K and V in shared memory (no block-wide
// barrier in the loop), so that many bytes are in flight per multiprocessor; kernel 8 (TMA
// bulk row copies on sm_90, the wide merge) is the fallback of the K/V-slot kernels.
// attn_decode_kv_kernel (19, 20 = the default, 29-31; sm_90, head_dim 128): the block's
// 128-key K and V tiles copied one after the other by TMA tensor copies into a ring of
// slots (see the kernel; 29-31 claim the tail's tiles from a counter per head).
//
// Per chunk and warp, the query heads of the KV group (up to 8) are the rows of
// mma.sync.m16n8k16 (rows 8-15 are zero):
//   S[h][t] = Q[h][:] . K[t][:]      A = Q (registers, f16), B = K (ldmatrix, 2 n-tiles)
//   O[h][d] += P[h][t] V[t][d]       A = P (the S accumulators rounded to f16), B = V
//                                    (ldmatrix.trans), 16 dims a pair of n-tiles
// with the online softmax (base 2) in between; all query heads of the group share each
// K/V load. The warps' (m, l, O) are merged in shared memory at the end, and the
// splits by attn_merge_mma_kernel (or merge_last_block). Shared tiles are XOR-swizzled by 16-byte chunk
// (chunk c of row r at c ^ (r & 7)) so that the 8 rows an ldmatrix reads fall in
// distinct banks.
//
// Programmatic dependent launch (pdl.cuh): K/V rows before the current position are
// static during a decode step, so a block whose split does not hold the newest row
// starts its pipeline before pdl_wait(); q and the newest row (written by the kernel
// before) are read after it. The position itself is copied in before the step's first
// kernel, so it may be read early.
#include <cuda.h>  // CUtensorMap (the encoder comes from the runtime: no libcuda link)
#include <cudaTypedefs.h>
#include <cuda_fp16.h>

#include <cmath>
#include <type_traits>

#include "cuda_backend.h"
#include "cuda_ops.cuh"
#include "cuda_util.cuh"
#include "device_limits.cuh"
#include "pdl.cuh"
#include "q8_quantize.cuh"

namespace tactic {
namespace cuda {

namespace {

constexpr int kNW = 4;       // warps a block
constexpr int kChunk = 16;   // tokens a warp step
constexpr int kHeads = 8;    // query heads a block (the mma's used rows)
constexpr float kLog2e = 1.4426950408889634f;

// How a warp copies its K/V chunks into shared memory: cp.async of 16 bytes a lane into
// XOR-swizzled rows, without (kCpAsync) or with an L2 prefetch-size hint of 128 or 256
// bytes (the L2 then fetches whole lines / line pairs from DRAM), or (kBulkRows, sm_90)
// one cp.async.bulk (TMA) copy of a whole row a lane into rows padded by 16 bytes (so
// that ldmatrix's 8 rows fall in distinct banks without a swizzle), completing on an
// mbarrier per stage; or (kBulkPairs) one bulk copy of two rows a lane into row pairs
// padded by 16 bytes, the chunk's tokens taken even ones first by the mma tiles (so that
// ldmatrix's 8 rows, one of each pair, again fall in distinct banks).
// The K/V-slot loads (attn_decode_kv_kernel, sm_90): one thread's TMA tensor copies of 64
// dims x 128 keys (128-byte swizzle) into a ring of 2 (kKvTma2) or 3 (kKvTma3) slots.
enum Load {
    kCpAsync = 0,
    kCpAsyncL2_128 = 1,
    kCpAsyncL2_256 = 2,
    kBulkRows = 3,
    kBulkPairs = 4,
    kKvTma2 = 5,  // attn_decode_kv_kernel, a ring of 2 slots
    kKvTma3 = 6   //   of 3 slots
};
__host__ __device__ constexpr bool is_kv(int load) { return load == kKvTma2 || load == kKvTma3; }
// How the splits are merged: a second kernel (attn_merge_mma_kernel), the last block of
// each head (merge_last_block), or a second kernel that keeps 4 splits' loads in flight a
// thread (attn_merge_wide_kernel).
enum Merge { kMergeKernel = 0, kMergeLastBlock = 1, kMergeWide = 2 };
// Which chunks a split takes: a contiguous range (kContiguous), or every n_splits-th
// chunk (kInterleaved: all blocks sweep the cache together; kernel 8's code only), or
// (kDynamic, the K/V-slot kernel only) the head's first static8 / 8 of the 128-key tiles
// fixed (split y's a contiguous share), the rest claimed a tile at a time from a counter
// per (KV head, piece), so that blocks on multiprocessors that stream faster take more of
// the tail (a static wave ends with its slowest block).
enum Order { kContiguous = 0, kInterleaved = 1, kDynamic = 2 };
struct Variant {
    Load load;
    Merge merge;
    Order order = kContiguous;
    int static8 = 0;  // kDynamic
};
// attn_kernel 1..31 (index 0 unused). 12-18 and 21-28 are removed variants (measured in
// docs/results/at_s13.md; set_option rejects them, attn_kernel_valid): their slots hold
// kernel 1, never selected.
constexpr Variant kRemoved = {kCpAsync, kMergeKernel};
constexpr Variant kVariants[] = {{kCpAsync, kMergeKernel},       {kCpAsync, kMergeKernel},
                                 {kCpAsync, kMergeLastBlock},    {kCpAsyncL2_256, kMergeKernel},
                                 {kCpAsyncL2_256, kMergeLastBlock}, {kCpAsyncL2_256, kMergeWide},
                                 {kCpAsyncL2_128, kMergeKernel}, {kBulkRows, kMergeKernel},
                                 {kBulkRows, kMergeWide},        {kBulkPairs, kMergeWide},
                                 {kBulkRows, kMergeWide, kInterleaved}, {kBulkPairs, kMergeWide, kInterleaved},
                                 kRemoved, kRemoved, kRemoved, kRemoved, kRemoved, kRemoved, kRemoved,  // 12-18
                                 {kKvTma2, kMergeWide},          {kKvTma3, kMergeWide},
                                 kRemoved, kRemoved, kRemoved, kRemoved, kRemoved, kRemoved, kRemoved, kRemoved,  // 21-28
                                 {kKvTma3, kMergeWide, kDynamic, 7}, {kKvTma2, kMergeWide, kDynamic, 7},
                                 {kKvTma3, kMergeWide, kDynamic, 6}};
constexpr int kMaxVariant = 31;
static_assert(sizeof(kVariants) / sizeof(kVariants[0]) == kMaxVariant + 1, "one slot an attn_kernel value");

template <int D, int LOAD = kCpAsync>
struct DecCfg {
    static constexpr int STAGES = D == 256 ? 2 : D == 128 ? 3 : 4;
    static constexpr int ROW = LOAD == kBulkRows ? D + 8 : D;      // halves a shared row (padded for bulk)
    static constexpr int TILE = LOAD == kBulkPairs ? kChunk / 2 * (2 * D + 8) : kChunk * ROW;  // halves a K (V) chunk
    static constexpr size_t pipe_bytes = size_t(kNW) * STAGES * 2 * TILE * sizeof(__half);
    static constexpr size_t merge_bytes = size_t(kNW) * kHeads * D * sizeof(float);
    static constexpr size_t bytes = pipe_bytes > merge_bytes ? pipe_bytes : merge_bytes;
};

// attn_decode_kv_kernel's ring: slots of 128 keys of K or of V (32 KB at head_dim 128).
// Head dim 128 only (current_variant: other head dims run kernel 8's code).
template <int D, int LOAD>
struct KvCfg {
    static_assert(D == 128, "K/V slots: head_dim 128");
    static constexpr int TK = 128;
    static constexpr int NB = LOAD == kKvTma2 ? 2 : 3;
    static constexpr int SLOT = TK * D;  // halves
    static constexpr size_t bytes = size_t(NB) * SLOT * sizeof(__half) + 1024;  // (+ the swizzle's alignment)
};

// The K/V-slot kernel's tensor maps of the K and V caches: dims (head_dim, n_ctx,
// n_head_kv), boxes of 64 dims x TK keys x 1 head, 128-byte swizzle (zeros for other loads).
struct KvMaps {
    CUtensorMap k, v;
};

struct DecArgs {
    const float *q;
    const __half *k, *v;
    int n_ctx, n_head, n_head_kv, n_hgroups;
    int lo, len;              // range [lo, lo + len) when d_pos is null
    const int32_t *d_pos;     // else [max(0, pos + 1 - window), pos + 1), pos = *d_pos
    int window;
    float scale;
    float *part_acc, *part_ml;  // [split][n_head][D], [split][n_head][2] (m in base 2)
    int32_t *done;              // non-null (attn_kernel 2): the last block of each (KV head, piece)
    float *out;                 //   merges the splits into out; counters zero between launches
    int32_t *ctr;               // kDynamic: tiles claimed per (KV head, piece), zero at launch
    int static8;                //   (the wide merge zeroes them for the next launch)
    uint64_t *probe;            // non-null: per block, globaltimer stamps (kProbe below)
};
// The timing probe (bench only, TACTIC_ATTN_PROBE): per split block [start, after pdl_wait,
// warp 0's first chunk landed, warp 0's loop done, partials written, smid | chunks attended
// << 32], then per merge block [start, after pdl_wait, done, smid, 0, 0]: where a launch's
// time goes (ramp, tail, merge) and how the dynamic order shared the chunks.
constexpr int kProbe = 6;
__device__ __forceinline__ uint64_t gtimer() {
    uint64_t t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
__device__ __forceinline__ uint32_t smid() {
    uint32_t r;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(r));
    return r;
}

__device__ __forceinline__ uint32_t smem_u32(const void *p) { return uint32_t(__cvta_generic_to_shared(p)); }

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
__device__ __forceinline__ void cp16(uint32_t dst, const void *src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
}
template <int LOAD>
__device__ __forceinline__ void cp16_hint(uint32_t dst, const void *src) {
    if constexpr (LOAD == kCpAsyncL2_128)
        asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
    else if constexpr (LOAD == kCpAsyncL2_256)
        asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
    else
        cp16(dst, src);
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void ldsm4(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void ldsm4_t(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
// c += A B, A rows 8-15 zero (a1 = a3 = 0).
__device__ __forceinline__ void mma_rows8(float (&c)[4], uint32_t a0, uint32_t a2, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(0u), "r"(a2), "r"(0u), "r"(b0), "r"(b1));
}
#if __CUDA_ARCH__ >= 900
__device__ __forceinline__ void bar_init(uint32_t bar) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void bar_init_fence() {
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// One arrival that also expects `bytes` of asynchronous copies on the barrier's phase.
__device__ __forceinline__ void bar_expect(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void bar_wait(uint32_t bar, uint32_t parity) {
    uint32_t done = 0;
    while (!done) {
        asm volatile(
            "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
            : "=r"(done)
            : "r"(bar), "r"(parity)
            : "memory");
    }
}
// Orders this thread's earlier shared-memory reads before later async-proxy (TMA) writes.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ __forceinline__ void bulk_copy(uint32_t dst, const void *src, uint32_t bytes, uint32_t bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
                 "l"(src), "r"(bytes), "r"(bar)
                 : "memory");
}
// Box (x, y, z) of a 3D tensor map into shared dst (aligned to 1024 bytes for the swizzle).
__device__ __forceinline__ void tensor_copy(uint32_t dst, const CUtensorMap *map, int x, int y, int z, uint32_t bar) {
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], "
        "[%5];\n" ::"r"(dst),
        "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(z), "r"(bar)
        : "memory");
}
#endif
__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t *>(&h);
}
#endif

// The last block to finish its split of a (KV head, head piece) merges all splits of
// those heads into out (threadfence reduction: every block's partials are visible
// device-wide before its increment of the counter). Each thread combines 4 dimensions of
// one head over the splits, 4 splits' rows loaded (from L2) before any is used.
template <int D>
__device__ __forceinline__ void merge_last_block(const DecArgs &a, int h0, int nh) {
    __shared__ int s_last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) s_last = atomicAdd(&a.done[blockIdx.x], 1) == int(gridDim.y) - 1;
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    constexpr int D4 = D / 4;
    const int ns = int(gridDim.y);
    for (int e = threadIdx.x; e < nh * D4; e += kNW * 32) {
        const int h = e / D4, d4 = e % D4;
        float M = -INFINITY, S = 0.f;
        float4 A = make_float4(0.f, 0.f, 0.f, 0.f);
        for (int s0 = 0; s0 < ns; s0 += 4) {
            float mb[4], lb[4];
            float4 ab[4];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const int64_t row = int64_t(s0 + u < ns ? s0 + u : 0) * a.n_head + h0 + h;
                mb[u] = s0 + u < ns ? __ldcg(a.part_ml + row * 2) : -INFINITY;
                lb[u] = __ldcg(a.part_ml + row * 2 + 1);
                ab[u] = __ldcg(reinterpret_cast<const float4 *>(a.part_acc + row * D) + d4);
            }
#pragma unroll
            for (int u = 0; u < 4; u++) {
                if (mb[u] == -INFINITY) continue;
                const float Mn = fmaxf(M, mb[u]), fa = exp2f(M - Mn), fb = exp2f(mb[u] - Mn);
                A.x = fmaf(ab[u].x, fb, A.x * fa);
                A.y = fmaf(ab[u].y, fb, A.y * fa);
                A.z = fmaf(ab[u].z, fb, A.z * fa);
                A.w = fmaf(ab[u].w, fb, A.w * fa);
                S = fmaf(lb[u], fb, S * fa);
                M = Mn;
            }
        }
        const float inv = S > 0.f ? 1.f / S : 0.f;
        *reinterpret_cast<float4 *>(a.out + int64_t(h0 + h) * D + 4 * d4) =
            make_float4(A.x * inv, A.y * inv, A.z * inv, A.w * inv);
    }
    if (threadIdx.x == 0) a.done[blockIdx.x] = 0;  // ready for the next launch (graph replays)
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
// Q of the group's heads as the mma's A operand (times scale, f16): row g = head h0 + g,
// k pairs 2c, 2c+1 and 2c+8, 2c+9 of each 16-dim step; rows from nh on zero.
template <int D>
__device__ __forceinline__ void load_q(const DecArgs &a, int h0, int nh, int lane, uint32_t (&qa)[D / 16][2]) {
    const int g = lane / 4, c = lane % 4;
    const bool on = g < nh;
    const float *qh = a.q + int64_t(h0 + (on ? g : 0)) * D;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        const float2 x = *reinterpret_cast<const float2 *>(qh + kk * 16 + 2 * c);
        const float2 y = *reinterpret_cast<const float2 *>(qh + kk * 16 + 8 + 2 * c);
        qa[kk][0] = on ? pack_half2(x.x * a.scale, x.y * a.scale) : 0u;
        qa[kk][1] = on ? pack_half2(y.x * a.scale, y.y * a.scale) : 0u;
    }
}

// One warp's online-softmax step over 16 keys: token t0 + i in row i of the shared K and
// V tiles at ks and vs (16-byte chunk ch of row r at soff(r, ch) halves; PAIRS: the mma's
// n-tile / k half 0 takes the even tokens, 1 the odd ones); tokens from t_end on are
// masked (t0 < t_end). Lane (g, c) keeps head g's running max m, its part of the sum l,
// and O's columns 2c, 2c+1 of each 8-dim tile.
template <int D, bool PAIRS, class Soff>
__device__ __forceinline__ void chunk_step(const __half *ks, const __half *vs, Soff soff,
                                           const uint32_t (&qa)[D / 16][2], int t0, int t_end, int lane,
                                           float (&o)[D / 8][4], float &m, float &l) {
    const int c = lane % 4;
    // ldmatrix row addresses: lane -> matrix i = lane / 8, row lane % 8.
    const int mi = lane / 8, mr = lane % 8;
    const int k_row = PAIRS ? 2 * mr + (mi >> 1) : (mi >> 1) * 8 + mr, k_cadd = mi & 1;  // K: n-tile by i>>1, k half by i&1
    const int v_row = PAIRS ? 2 * mr + (mi & 1) : (mi & 1) * 8 + mr, v_cadd = mi >> 1;  // V^T: k half by i&1, n-tile by i>>1

    float s0[4] = {0.f, 0.f, 0.f, 0.f}, s1[4] = {0.f, 0.f, 0.f, 0.f};  // tokens 0-7, 8-15
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        uint32_t b[4];
        ldsm4(b, smem_u32(ks + soff(k_row, 2 * kk + k_cadd)));
        mma_rows8(s0, qa[kk][0], qa[kk][1], b[0], b[1]);
        mma_rows8(s1, qa[kk][0], qa[kk][1], b[2], b[3]);
    }
    // Thread holds head g, tokens 2c, 2c+1 (s0) and 8 + 2c, 9 + 2c (s1).
    float sc[4] = {s0[0] * kLog2e, s0[1] * kLog2e, s1[0] * kLog2e, s1[1] * kLog2e};
    const int tt[4] = {PAIRS ? 4 * c : 2 * c, PAIRS ? 4 * c + 2 : 2 * c + 1, PAIRS ? 4 * c + 1 : 8 + 2 * c,
                       PAIRS ? 4 * c + 3 : 9 + 2 * c};
#pragma unroll
    for (int i = 0; i < 4; i++)
        if (t0 + tt[i] >= t_end) sc[i] = -INFINITY;
    float mx = fmaxf(fmaxf(sc[0], sc[1]), fmaxf(sc[2], sc[3]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_new = fmaxf(m, mx);  // finite: token t0 is in range
    const float alpha = exp2f(m - m_new);
    float p[4];
#pragma unroll
    for (int i = 0; i < 4; i++) p[i] = exp2f(sc[i] - m_new);
    l = l * alpha + (p[0] + p[1]) + (p[2] + p[3]);
    m = m_new;
    const uint32_t pa0 = pack_half2(p[0], p[1]), pa2 = pack_half2(p[2], p[3]);
#pragma unroll
    for (int j = 0; j < D / 8; j++) {
        o[j][0] *= alpha;
        o[j][1] *= alpha;
    }
#pragma unroll
    for (int jj = 0; jj < D / 16; jj++) {
        uint32_t b[4];
        ldsm4_t(b, smem_u32(vs + soff(v_row, 2 * jj + v_cadd)));
        mma_rows8(o[2 * jj], pa0, pa2, b[0], b[1]);
        mma_rows8(o[2 * jj + 1], pa0, pa2, b[2], b[3]);
    }
}

// The block's warps' (m, l, O) merged into its split's partials (part_acc, part_ml), and
// with attn_kernel 2 the splits merged by the last block. The shared memory from
// smem_raw on (the finished pipeline's) holds the warps' O.
template <int D>
__device__ __forceinline__ void write_partials(const DecArgs &a, const float (&o)[D / 8][4], float m, float l, int h0,
                                               int nh, float (*s_m)[kHeads], float (*s_l)[kHeads]) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    __syncthreads();  // every warp is done with its pipeline: its space holds the merge now
    float *s_o = reinterpret_cast<float *>(smem_raw);  // [kNW][kHeads][D]
#pragma unroll
    for (int j = 0; j < D / 8; j++)
        *reinterpret_cast<float2 *>(s_o + (warp * kHeads + g) * D + j * 8 + 2 * c) = make_float2(o[j][0], o[j][1]);
    if (c == 0) {
        s_m[warp][g] = m;
        s_l[warp][g] = l;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < nh * D; e += kNW * 32) {
        const int h = e / D, d = e % D;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < kNW; w++) M = fmaxf(M, s_m[w][h]);
        float A = 0.f, L = 0.f;
        if (M != -INFINITY) {
#pragma unroll
            for (int w = 0; w < kNW; w++) {
                const float f = exp2f(s_m[w][h] - M);
                A = fmaf(f, s_o[(w * kHeads + h) * D + d], A);
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
    if (a.done) merge_last_block<D>(a, h0, nh);
}
#endif

template <int D, int LOAD, int ORDER>
__global__ void __launch_bounds__(kNW * 32) attn_decode_mma_kernel(DecArgs a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    using C = DecCfg<D, LOAD>;
    constexpr int STAGES = C::STAGES, TILE = C::TILE, ROW = C::ROW;
    constexpr bool PAIRS = LOAD == kBulkPairs;  // also: mma tiles take the even tokens, then the odd
    constexpr bool BULK = LOAD == kBulkRows || PAIRS;
#if __CUDA_ARCH__ < 900
    if constexpr (BULK) __trap();  // launched only on sm_90 and later (variant_load)
#endif
    constexpr int CPR = D / 8;                 // 16-byte chunks a row
    constexpr int CP_PER_LANE = kChunk * CPR / 32;
    constexpr int KT = D / 16;                 // k-steps of Q.K
    constexpr int NT = D / 8;                  // 8-dim n-tiles of O
    __shared__ uint64_t s_pr[4];  // probe stamps (in shared memory: no registers held across the loop)
    __shared__ int s_chunks;
    if (a.probe && threadIdx.x == 0) {
        s_pr[0] = gtimer();
        s_chunks = 0;
    }
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __half *pipe = reinterpret_cast<__half *>(smem_raw);
    __shared__ float s_m[kNW][kHeads], s_l[kNW][kHeads];

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int piece = int(blockIdx.x), split = int(blockIdx.y);
    const int kvh = piece / a.n_hgroups, hg = piece % a.n_hgroups;
    const int group = a.n_head / a.n_head_kv;
    const int h0 = kvh * group + hg * kHeads;
    const int nh = min(kHeads, group - hg * kHeads);
    // Shared offset (halves) of 16-byte chunk ch of row r of a K or V tile.
    auto soff = [](int r, int ch) {
        return PAIRS ? (r >> 1) * (2 * D + 8) + (r & 1) * D + ch * 8
                     : BULK ? r * ROW + ch * 8 : r * D + ((ch ^ (r & 7)) * 8);
    };
#if __CUDA_ARCH__ >= 900
    __shared__ __align__(8) uint64_t s_bar[kNW][STAGES];  // bulk: one mbarrier a warp's stage
    if constexpr (BULK) {
        if (lane == 0)
            for (int st = 0; st < STAGES; st++) bar_init(smem_u32(&s_bar[warp][st]));
        bar_init_fence();
        __syncwarp();
    }
#endif

    int lo = a.lo, len = a.len;
    if (a.d_pos) {
        const int n = a.d_pos[0] + 1;
        lo = a.window > 0 ? max(0, n - a.window) : 0;
        len = n - lo;
    }
    const int n_splits = int(gridDim.y);
    const int split_len = ((len + n_splits - 1) / n_splits + kChunk - 1) / kChunk * kChunk;
    const int s_begin = min(len, split * split_len);
    const int s_end = min(len, s_begin + split_len);
    // This block's chunks j = 0 .. n_chunks-1 start at token chunk_t0(j); tokens from t_end on are
    // masked (and their rows not read).
    const int all_chunks = (len + kChunk - 1) / kChunk;
    const int n_chunks = ORDER == kInterleaved
                             ? (all_chunks > split ? (all_chunks - split + n_splits - 1) / n_splits : 0)
                             : (s_end - s_begin + kChunk - 1) / kChunk;
    const int t_end = ORDER == kInterleaved ? len : s_end;
    auto chunk_t0 = [&](int j) { return ORDER == kInterleaved ? (split + j * n_splits) * kChunk : s_begin + j * kChunk; };
    const __half *K0 = a.k + (int64_t(kvh) * a.n_ctx + lo) * D, *V0 = a.v + (int64_t(kvh) * a.n_ctx + lo) * D;

    __half *wk = pipe + size_t(warp) * STAGES * 2 * TILE;  // this warp's stages: K then V
    // Copies chunk `ci` (of this block's split) into stage `st`; rows past the split
    // repeat its last row (their scores are masked).
    auto load_chunk = [&](int ci, int st) {
        const int t0 = chunk_t0(ci);
        __half *ks = wk + st * 2 * TILE, *vs = ks + TILE;
        if constexpr (PAIRS) {
#if __CUDA_ARCH__ >= 900
            // Lane p < 8 copies K rows 2p, 2p+1, lane 8 + p those of V (a pair that crosses t_end
            // as two single rows, the second repeating the last row).
            const uint32_t bar = smem_u32(&s_bar[warp][st]);
            if (lane == 0) bar_expect(bar, 2 * kChunk * D * sizeof(__half));
            __syncwarp();
            if (lane < kChunk) {
                const int pr = lane % (kChunk / 2), r = 2 * pr;
                const __half *src = lane < kChunk / 2 ? K0 : V0;
                __half *dst = (lane < kChunk / 2 ? ks : vs) + pr * (2 * D + 8);
                if (t0 + r + 1 < t_end) {
                    bulk_copy(smem_u32(dst), src + int64_t(t0 + r) * D, 2 * D * sizeof(__half), bar);
                } else {
                    bulk_copy(smem_u32(dst), src + int64_t(min(t0 + r, t_end - 1)) * D, D * sizeof(__half), bar);
                    bulk_copy(smem_u32(dst + D), src + int64_t(t_end - 1) * D, D * sizeof(__half), bar);
                }
            }
#endif
        } else if constexpr (BULK) {
#if __CUDA_ARCH__ >= 900
            // Lane r < 16 copies K row r, lane 16 + r V row r: 2 * kChunk rows of D halves.
            const uint32_t bar = smem_u32(&s_bar[warp][st]);
            if (lane == 0) bar_expect(bar, 2 * kChunk * D * sizeof(__half));
            __syncwarp();
            const int r = lane % kChunk;
            const int64_t off = int64_t(min(t0 + r, t_end - 1)) * D;
            bulk_copy(smem_u32((lane < kChunk ? ks : vs) + r * ROW), (lane < kChunk ? K0 : V0) + off,
                      D * sizeof(__half), bar);
#endif
        } else {
#pragma unroll
            for (int i = 0; i < CP_PER_LANE; i++) {
                const int e = i * 32 + lane, r = e / CPR, ch = e % CPR;
                const int64_t off = int64_t(min(t0 + r, t_end - 1)) * D + ch * 8;
                const int so = soff(r, ch);
                cp16_hint<LOAD>(smem_u32(ks + so), K0 + off);
                cp16_hint<LOAD>(smem_u32(vs + so), V0 + off);
            }
        }
    };
    // Chunks of this warp: warp, warp + kNW, ...
    const int my_chunks = n_chunks > warp ? (n_chunks - warp + kNW - 1) / kNW : 0;
    const bool holds_newest =
        a.d_pos && (ORDER == kInterleaved ? all_chunks > 0 && (all_chunks - 1) % n_splits == split
                                          : s_end == len && s_end > s_begin);
    if (holds_newest) pdl_wait();
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < my_chunks) load_chunk(warp + s * kNW, s);
        if constexpr (!BULK) cp_commit();
    }
    if (!holds_newest) pdl_wait();
    if (a.probe && threadIdx.x == 0) s_pr[1] = gtimer();

    uint32_t qa[KT][2];
    load_q<D>(a, h0, nh, lane, qa);
    float o[NT][4];
#pragma unroll
    for (int j = 0; j < NT; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
    float m = -INFINITY, l = 0.f;  // of head g (the 4 lanes of a row agree on m)

    for (int it = 0; it < my_chunks; it++) {
        if constexpr (BULK) {
#if __CUDA_ARCH__ >= 900
            bar_wait(smem_u32(&s_bar[warp][it % STAGES]), uint32_t(it / STAGES) & 1u);
            fence_proxy_async();  // the stage refilled below was read (ldmatrix) last iteration
#endif
        } else {
            cp_wait<STAGES - 2>();
        }
        __syncwarp();
        if (a.probe && it == 0 && threadIdx.x == 0) s_pr[2] = gtimer();
        {
            const int nx = it + STAGES - 1;
            if (nx < my_chunks) load_chunk(warp + nx * kNW, nx % STAGES);
            if constexpr (!BULK) cp_commit();
        }
        const __half *ks = wk + (it % STAGES) * 2 * TILE;
        chunk_step<D, PAIRS>(ks, ks + TILE, soff, qa, chunk_t0(warp + it * kNW), t_end, lane, o, m, l);
    }
    if constexpr (!BULK) cp_wait<0>();  // (bulk: every chunk copied was waited for)
    pdl_trigger();
    if (a.probe && threadIdx.x == 0) s_pr[3] = gtimer();
    if (a.probe && lane == 0) atomicAdd(&s_chunks, my_chunks);  // (chunks this warp attended)
    write_partials<D>(a, o, m, l, h0, nh, s_m, s_l);
    if (a.probe) {
        __syncthreads();
        if (threadIdx.x == 0) {
            uint64_t *p = a.probe + (int64_t(split) * gridDim.x + piece) * kProbe;
            for (int i = 0; i < 4; i++) p[i] = s_pr[i];
            p[4] = gtimer();
            p[5] = smid() | uint64_t(s_chunks) << 32;
        }
    }
#else
    (void)a;
    __trap();  // launched only on sm_80 and later (decode_mma_supported)
#endif
}

// cuDNN's schedule (attn_kernel 19, 20): tiles of 128 keys, each warp 32 of them; the
// block's K tile and V tile are copied one after the other (one thread's TMA boxes of 64
// dims x 128 keys) into a ring of NB slots, so that a tile's scores are computed while its
// V lands, and a slot is refilled with the next copy as soon as all warps have read it
// (NB = 2: one 32 KB copy in flight a block, one stream of K or V at a time).
// ORDER kDynamic (29-31): the range in whole 128-key tiles of the head, split y's fixed
// tiles [y P, y P + P) with P = tiles x static8 / 8 / splits, the rest claimed a tile at a
// time from the (KV head, piece)'s counter by thread 0 (the claim for the next tile issued
// when one is taken): measured (batch 2), these blocks' ends spread by 12 us at 128K (one
// stream a block, so a block's rate follows its multiprocessor's latency), a tail that
// claims share out.
template <int D, int LOAD, int ORDER>
__global__ void __launch_bounds__(kNW * 32) attn_decode_kv_kernel(DecArgs a, const __grid_constant__ KvMaps maps) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    using C = KvCfg<D, LOAD>;
    constexpr int TK = C::TK, NB = C::NB, SLOT = C::SLOT;
    constexpr int CPW = TK / kNW / kChunk;  // 16-key steps a warp a tile
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __half *ring = reinterpret_cast<__half *>(smem_raw + (1024 - smem_u32(smem_raw) % 1024) % 1024);
    __shared__ float s_m[kNW][kHeads], s_l[kNW][kHeads];
    __shared__ __align__(8) uint64_t s_bar[NB];
    __shared__ uint64_t s_pr0;  // probe: the block's start
    if (a.probe && threadIdx.x == 0) s_pr0 = gtimer();

    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, c = lane % 4;
    const int kvh = blockIdx.x / a.n_hgroups, hg = blockIdx.x % a.n_hgroups;
    const int group = a.n_head / a.n_head_kv;
    const int h0 = kvh * group + hg * kHeads;
    const int nh = min(kHeads, group - hg * kHeads);
    auto soff = [](int r, int ch) { return (ch >> 3) * (TK * 64) + r * 64 + (((ch & 7) ^ (r & 7)) * 8); };
    if (tid == 0) {
        for (int b = 0; b < NB; b++) bar_init(smem_u32(&s_bar[b]));
        bar_init_fence();
    }
    __syncthreads();

    int lo = a.lo, len = a.len;
    if (a.d_pos) {
        const int n = a.d_pos[0] + 1;
        lo = a.window > 0 ? max(0, n - a.window) : 0;
        len = n - lo;
    }
    constexpr bool DYN = ORDER == kDynamic;
    const int n_splits = int(gridDim.y);
    const int split_len = ((len + n_splits - 1) / n_splits + kChunk - 1) / kChunk * kChunk;
    const int s_begin = DYN ? 0 : min(len, int(blockIdx.y) * split_len);
    const int s_end = DYN ? len : min(len, s_begin + split_len);  // (DYN: masks at the range's end)
    const int n_tiles = DYN ? 0 : (s_end - s_begin + TK - 1) / TK, n_copies = 2 * n_tiles;
    // DYN: the head's tiles, this block's fixed ones [f0, f0 + n_fix), the claimed ones from
    // n_fix * n_splits on; s_tile[j & 3]: the j-th tile of this block (-1: none), written by
    // thread 0 when it issues the tile's K copy, read by all at iteration j (after a barrier).
    const int all_tiles = (len + TK - 1) / TK;
    const int n_fix = DYN ? all_tiles * a.static8 / (8 * n_splits) : 0, f0 = int(blockIdx.y) * n_fix;
    __shared__ int s_tile[4];
    int pend = 0, dry = 0;  // (thread 0's: the pending claim, the claims ran out)
    auto claim = [&]() { pend = n_fix * n_splits + atomicAdd(a.ctr + blockIdx.x, 1); };
    // Copy q: tile q / 2's K (q even) or V into slot q % NB.
    auto issue = [&](int q) {
        if (tid == 0) {
            int tz;
            if constexpr (DYN) {
                const int j = q / 2;
                int t = -1;
                if (q & 1) {
                    t = s_tile[j & 3];
                } else {
                    if (j < n_fix) {
                        t = f0 + j;
                    } else if (!dry) {
                        t = pend;  // (its claim was issued a tile ago)
                        if (t < all_tiles) claim();
                        else dry = 1;
                    }
                    t = t < all_tiles ? t : -1;
                    s_tile[j & 3] = t;
                }
                if (t < 0) return;
                tz = t * TK;
            } else {
                tz = s_begin + (q / 2) * TK;
            }
            const int sl = q % NB;
            const uint32_t bar = smem_u32(&s_bar[sl]);
            bar_expect(bar, TK * D * sizeof(__half));
#pragma unroll
            for (int hf = 0; hf < D / 64; hf++)
                tensor_copy(smem_u32(ring + sl * SLOT + hf * TK * 64), q & 1 ? &maps.v : &maps.k, hf * 64, lo + tz,
                            kvh, bar);
        }
    };
    auto wait = [&](int q) { bar_wait(smem_u32(&s_bar[q % NB]), uint32_t(q / NB) & 1u); };
    // DYN: the first NB copies' tiles are fixed ones unless n_fix is small (then they may be
    // claimed: after pdl_wait, which orders the claims after the last launch's merge).
    const bool holds_newest =
        DYN ? (a.d_pos && n_fix * n_splits == all_tiles && int(blockIdx.y) == n_splits - 1) || n_fix < (NB + 1) / 2
            : a.d_pos && s_end == len && s_end > s_begin;
    if (holds_newest) pdl_wait();
    if (DYN && tid == 0 && holds_newest) claim();
    for (int q = 0; q < NB && (DYN || q < n_copies); q++) issue(q);
    if (!holds_newest) pdl_wait();
    if (DYN && tid == 0 && !holds_newest) claim();
    if (DYN) __syncthreads();  // s_tile of the first tiles

    uint32_t qa[D / 16][2];
    load_q<D>(a, h0, nh, lane, qa);
    float o[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
    float m = -INFINITY, l = 0.f;
    const int mi = lane / 8, mr = lane % 8;
    const int k_row = (mi >> 1) * 8 + mr, k_cadd = mi & 1, v_row = (mi & 1) * 8 + mr, v_cadd = mi >> 1;

    int n_done = 0;  // (probe: tiles attended)
    for (int i = 0; DYN || i < n_tiles; i++) {
        int tz = s_begin + i * TK;
        if constexpr (DYN) {
            const int t = s_tile[i & 3];
            if (t < 0) break;
            tz = t * TK;
        }
        n_done++;
        wait(2 * i);
        const __half *ks = ring + (2 * i % NB) * SLOT;
        float sc[CPW][4];
#pragma unroll
        for (int u = 0; u < CPW; u++) {
            const int r0 = (warp * CPW + u) * kChunk;
            float s0[4] = {0.f, 0.f, 0.f, 0.f}, s1[4] = {0.f, 0.f, 0.f, 0.f};
            if (tz + r0 < s_end) {
#pragma unroll
                for (int kk = 0; kk < D / 16; kk++) {
                    uint32_t b[4];
                    ldsm4(b, smem_u32(ks + soff(r0 + k_row, 2 * kk + k_cadd)));
                    mma_rows8(s0, qa[kk][0], qa[kk][1], b[0], b[1]);
                    mma_rows8(s1, qa[kk][0], qa[kk][1], b[2], b[3]);
                }
            }
            const float x[4] = {s0[0], s0[1], s1[0], s1[1]};
            const int tt[4] = {2 * c, 2 * c + 1, 8 + 2 * c, 9 + 2 * c};
#pragma unroll
            for (int e = 0; e < 4; e++) sc[u][e] = tz + r0 + tt[e] < s_end ? x[e] * kLog2e : -INFINITY;
        }
        fence_proxy_async();
        __syncthreads();  // K slot read by every warp
        if (DYN || 2 * i + NB < n_copies) issue(2 * i + NB);

        float mx = -INFINITY;
#pragma unroll
        for (int u = 0; u < CPW; u++) mx = fmaxf(mx, fmaxf(fmaxf(sc[u][0], sc[u][1]), fmaxf(sc[u][2], sc[u][3])));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const bool any = mx != -INFINITY;  // (the same for the whole warp)
        const float m_new = fmaxf(m, mx), alpha = any ? exp2f(m - m_new) : 1.f;
        uint32_t pa[CPW][2];
#pragma unroll
        for (int u = 0; u < CPW; u++) {
            float p[4];
#pragma unroll
            for (int e = 0; e < 4; e++) p[e] = any ? exp2f(sc[u][e] - m_new) : 0.f;
            l = (u == 0 ? l * alpha : l) + (p[0] + p[1]) + (p[2] + p[3]);
            pa[u][0] = pack_half2(p[0], p[1]);
            pa[u][1] = pack_half2(p[2], p[3]);
        }
        m = any ? m_new : m;
#pragma unroll
        for (int j = 0; j < D / 8; j++) {
            o[j][0] *= alpha;
            o[j][1] *= alpha;
        }

        wait(2 * i + 1);
        __half *vs = ring + ((2 * i + 1) % NB) * SLOT;
        // V rows past the split zeroed (masked, but rows past the range hold cache not yet
        // written, or the newest row copied before pdl_wait: maybe NaN, and 0 * NaN is NaN);
        // whole 16-byte chunks, so the swizzle does not matter.
        if (tz + TK > s_end) {
            for (int e = tid; e < (tz + TK - s_end) * (D / 8); e += kNW * 32) {
                const int r = s_end - tz + e / (D / 8), ch = e % (D / 8);
                *reinterpret_cast<uint4 *>(vs + soff(r, ch)) = make_uint4(0u, 0u, 0u, 0u);
            }
            __syncthreads();
        }
        if (any) {
#pragma unroll
            for (int u = 0; u < CPW; u++) {
                const int r0 = (warp * CPW + u) * kChunk;
#pragma unroll
                for (int jj = 0; jj < D / 16; jj++) {
                    uint32_t b[4];
                    ldsm4_t(b, smem_u32(vs + soff(r0 + v_row, 2 * jj + v_cadd)));
                    mma_rows8(o[2 * jj], pa[u][0], pa[u][1], b[0], b[1]);
                    mma_rows8(o[2 * jj + 1], pa[u][0], pa[u][1], b[2], b[3]);
                }
            }
        }
        fence_proxy_async();
        __syncthreads();  // V slot read by every warp
        if (DYN || 2 * i + 1 + NB < n_copies) issue(2 * i + 1 + NB);
    }
    pdl_trigger();
    write_partials<D>(a, o, m, l, h0, nh, s_m, s_l);
    if (a.probe) {  // (start and end only: the other stamps repeat them)
        __syncthreads();
        if (threadIdx.x == 0) {
            uint64_t *p = a.probe + (int64_t(blockIdx.y) * gridDim.x + blockIdx.x) * kProbe;
            const uint64_t t = gtimer();
            p[0] = p[1] = p[2] = s_pr0;
            p[3] = p[4] = t;
            p[5] = smid() | uint64_t(n_done) * (TK / kChunk) << 32;
        }
    }
#else
    (void)a;
    __trap();  // launched only on sm_90 and later (current_variant)
#endif
}

// out[h] = sum_s 2^(m_s - M) acc_s / sum_s 2^(m_s - M) l_s (zeros if nothing was
// attended). One block a head: the warps take the splits in turn, a lane 4 dims.
constexpr int kMergeWarps = 4;
__global__ void __launch_bounds__(kMergeWarps * 32) attn_merge_mma_kernel(const float *__restrict__ part_acc,
                                                                        const float *__restrict__ part_ml,
                                                                        int n_splits, int n_head, int D,
                                                                        float *__restrict__ out) {
    pdl_wait();
    pdl_trigger();
    const int h = blockIdx.x, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __shared__ float s_red[kMergeWarps];
    __shared__ float s_a[kMergeWarps][256];
    __shared__ float s_lsum[kMergeWarps];
    float M = -INFINITY;
    for (int s = threadIdx.x; s < n_splits; s += kMergeWarps * 32)
        M = fmaxf(M, part_ml[(int64_t(s) * n_head + h) * 2]);
    M = warp_max(M);
    if (lane == 0) s_red[warp] = M;
    __syncthreads();
    M = s_red[0];
#pragma unroll
    for (int w = 1; w < kMergeWarps; w++) M = fmaxf(M, s_red[w]);
    float4 acc[2] = {make_float4(0.f, 0.f, 0.f, 0.f), make_float4(0.f, 0.f, 0.f, 0.f)};
    float L = 0.f;
    const int n4 = D / 4;  // float4 columns: 16, 32 or 64
    if (M != -INFINITY) {
        for (int s = warp; s < n_splits; s += kMergeWarps) {
            const int64_t row = int64_t(s) * n_head + h;
            const float ms = part_ml[row * 2];
            if (ms == -INFINITY) continue;
            const float f = exp2f(ms - M);
            L = fmaf(f, part_ml[row * 2 + 1], L);
            const float4 *src = reinterpret_cast<const float4 *>(part_acc + row * D);
#pragma unroll
            for (int u = 0; u < 2; u++) {
                const int d4 = lane + 32 * u;
                if (d4 < n4) {
                    const float4 x = src[d4];
                    acc[u].x = fmaf(f, x.x, acc[u].x);
                    acc[u].y = fmaf(f, x.y, acc[u].y);
                    acc[u].z = fmaf(f, x.z, acc[u].z);
                    acc[u].w = fmaf(f, x.w, acc[u].w);
                }
            }
        }
    }
#pragma unroll
    for (int u = 0; u < 2; u++) {
        const int d4 = lane + 32 * u;
        if (d4 < n4) *reinterpret_cast<float4 *>(&s_a[warp][4 * d4]) = acc[u];
    }
    if (lane == 0) s_lsum[warp] = L;
    __syncthreads();
    float Lt = 0.f;
#pragma unroll
    for (int w = 0; w < kMergeWarps; w++) Lt += s_lsum[w];
    const float inv = Lt > 0.f ? 1.f / Lt : 0.f;
    for (int d = threadIdx.x; d < D; d += kMergeWarps * 32) {
        float A = 0.f;
#pragma unroll
        for (int w = 0; w < kMergeWarps; w++) A += s_a[w][d];
        out[int64_t(h) * D + d] = A * inv;
    }
}

// attn_merge_mma_kernel's result with fewer dependent L2 round trips: a thread owns 4
// dimensions of a head and a residue class of the splits, loads 4 of its splits' (m, l,
// acc) before using any (online rescaling, no separate pass for the maximum), and the
// classes are merged in shared memory. HPB heads a block (128 threads each). ctr
// (kDynamic): n_ctr claim counters zeroed for the next launch (the split kernel is
// complete here, and the next one claims only after its own pdl_wait, i.e. after this
// grid). probe: kProbe stamps a block (see kProbe). q8_kind >= 0 (a Q8Kind): out is also
// quantized into qa for the next matvec, by the block's warps from the block's own heads
// (HPB x D values: whole groups), with the quantize kernels' functions: the same bytes,
// one kernel fewer.
template <int D, int HPB>
__global__ void __launch_bounds__(128 * HPB) attn_merge_wide_kernel(const float *__restrict__ part_acc,
                                                                    const float *__restrict__ part_ml, int n_splits,
                                                                    int n_head, float *out, int32_t *ctr, int n_ctr,
                                                                    uint64_t *probe, Q8Act qa, int q8_kind) {
    const uint64_t pr_start = probe ? gtimer() : 0;
    pdl_wait();
    pdl_trigger();
    const uint64_t pr_wait = probe ? gtimer() : 0;
    if (ctr && blockIdx.x == 0)
        for (int i = int(threadIdx.x); i < n_ctr; i += 128 * HPB) ctr[i] = 0;
    constexpr int D4 = D / 4, G = 128 / D4;  // float4 columns; split classes
    const int hb = threadIdx.x / 128, t = threadIdx.x % 128;
    const int h = blockIdx.x * HPB + hb, j = t / D4, d4 = t % D4;
    __shared__ float s_m[HPB][G], s_l[HPB][G];
    __shared__ float4 s_a[HPB][G][D4];
    float M = -INFINITY, S = 0.f;
    float4 A = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int s0 = j; s0 < n_splits; s0 += 4 * G) {
        float mb[4], lb[4];
        float4 ab[4];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            const int sp = s0 + u * G;
            const int64_t row = int64_t(sp < n_splits ? sp : 0) * n_head + h;
            mb[u] = sp < n_splits ? part_ml[row * 2] : -INFINITY;
            lb[u] = part_ml[row * 2 + 1];
            ab[u] = reinterpret_cast<const float4 *>(part_acc + row * D)[d4];
        }
#pragma unroll
        for (int u = 0; u < 4; u++) {
            if (mb[u] == -INFINITY) continue;
            const float Mn = fmaxf(M, mb[u]), fa = exp2f(M - Mn), fb = exp2f(mb[u] - Mn);
            A.x = fmaf(ab[u].x, fb, A.x * fa);
            A.y = fmaf(ab[u].y, fb, A.y * fa);
            A.z = fmaf(ab[u].z, fb, A.z * fa);
            A.w = fmaf(ab[u].w, fb, A.w * fa);
            S = fmaf(lb[u], fb, S * fa);
            M = Mn;
        }
    }
    s_a[hb][j][d4] = A;
    if (d4 == 0) {
        s_m[hb][j] = M;
        s_l[hb][j] = S;
    }
    __syncthreads();
    if (j == 0) {
        float Mx = -INFINITY;
#pragma unroll
        for (int g = 0; g < G; g++) Mx = fmaxf(Mx, s_m[hb][g]);
        float4 R = make_float4(0.f, 0.f, 0.f, 0.f);
        float L = 0.f;
        if (Mx != -INFINITY) {
#pragma unroll
            for (int g = 0; g < G; g++) {
                if (s_m[hb][g] == -INFINITY) continue;
                const float f = exp2f(s_m[hb][g] - Mx);
                const float4 x = s_a[hb][g][d4];
                R.x = fmaf(f, x.x, R.x);
                R.y = fmaf(f, x.y, R.y);
                R.z = fmaf(f, x.z, R.z);
                R.w = fmaf(f, x.w, R.w);
                L = fmaf(f, s_l[hb][g], L);
            }
        }
        const float inv = L > 0.f ? 1.f / L : 0.f;
        reinterpret_cast<float4 *>(out + int64_t(h) * D)[d4] = make_float4(R.x * inv, R.y * inv, R.z * inv, R.w * inv);
        if (probe && d4 == 0 && hb == 0) {
            uint64_t *p = probe + int64_t(blockIdx.x) * kProbe;
            p[0] = pr_start;
            p[1] = pr_wait;
            p[2] = gtimer();
            p[3] = smid();
            p[4] = p[5] = 0;
        }
    }
    if (q8_kind < 0) return;  // (kernel-uniform)
    __syncthreads();  // the block's heads of out are written and visible to the block
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (q8_kind == int(Q8Kind::K)) {  // (launched with HPB D a multiple of 256)
        const int g = blockIdx.x * (HPB * D / 256) + warp;
        if (warp < HPB * D / 256) quantize_q8k_group(out, g, lane, qa, nullptr);
    } else {
        for (int w = warp; w < HPB * D / 32; w += 4 * HPB)
            quantize_q8b_group(out, blockIdx.x * (HPB * D / 32) + w, lane, q8_kind == int(Q8Kind::B1), qa, nullptr);
    }
}

// The split kernel of a load (the K/V-slot kernel for kKvTma*) and its shared memory.
template <int D, int LOAD, int ORDER>
constexpr auto split_kernel() {  // (the two kernels' parameters differ)
    if constexpr (is_kv(LOAD)) return attn_decode_kv_kernel<D, LOAD, ORDER>;
    else return attn_decode_mma_kernel<D, LOAD, ORDER>;
}
template <int D, int LOAD>
constexpr size_t split_smem() {
    if constexpr (is_kv(LOAD)) return KvCfg<D, LOAD>::bytes;
    else return DecCfg<D, LOAD>::bytes;
}

template <int D, int LOAD, int ORDER = kContiguous>
void configure() {
    static bool done = false;
    if (!done) {
        set_dynamic_smem(split_kernel<D, LOAD, ORDER>(), split_smem<D, LOAD>(), "the decode attention kernel");
        done = true;
    }
}

template <int D, int LOAD>
int occupancy() {  // asked once (the backend sizes its splits every decode step)
    static int n = 0;
    if (n == 0) {
        configure<D, LOAD>();
        TACTIC_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, split_kernel<D, LOAD, kContiguous>(), kNW * 32,
                                                                split_smem<D, LOAD>()));
        n = std::max(1, n);
    }
    return n;
}

// The variant options().attn_kernel selects for head_dim D and ranges of up to max_len keys
// (32: 20 or 30 by max_len; 1 below 1 or above kMaxVariant; set_option accepts only
// attn_kernel_valid values); bulk copies need sm_90, below it they fall back to cp.async.
Variant current_variant(int D, int64_t max_len) {
    int k = options().attn_kernel;
    if (k == 32) k = max_len >= kAttnLongKv ? 30 : 20;
    Variant v = kVariants[k >= 1 && k <= kMaxVariant ? k : 1];
    // The K/V-slot kernels were timed at head_dim 128 only (the 8B shape; 256 has no such
    // kernel): other head dims keep kernel 8, which attn_kernel 20 (the default) then is.
    if (D != 128 && is_kv(v.load)) v = kVariants[8];
    if (v.load == kBulkRows || v.load == kBulkPairs || is_kv(v.load)) {
        if (device_limits().cc_major < 9) {
            // The K/V-slot schedule (19, 20, 29-31) is TMA-only: kernel 8's fallback, as the
            // other bulk-row kernels get.
            if (is_kv(v.load)) v = kVariants[8];
            v.load = kCpAsync;
            v.order = kContiguous;
        }
    }
    return v;
}

// f(head dim, load) as integral constants, for a run-time head dim and load (the K/V-slot loads
// exist at head_dim 128 only): the one switch the per-variant lookups below share.
template <int V>
using IC = std::integral_constant<int, V>;
template <class F>
auto with_d_load(int D, Load load, F f) {
    if (is_kv(load)) return load == kKvTma2 ? f(IC<128>{}, IC<kKvTma2>{}) : f(IC<128>{}, IC<kKvTma3>{});
    auto by_load = [&](auto d) {
        switch (load) {
            case kCpAsyncL2_128: return f(d, IC<kCpAsyncL2_128>{});
            case kCpAsyncL2_256: return f(d, IC<kCpAsyncL2_256>{});
            case kBulkRows: return f(d, IC<kBulkRows>{});
            case kBulkPairs: return f(d, IC<kBulkPairs>{});
            default: return f(d, IC<kCpAsync>{});
        }
    };
    return D == 64 ? by_load(IC<64>{}) : D == 128 ? by_load(IC<128>{}) : by_load(IC<256>{});
}

int occupancy_for(int D, Load load) {
    return with_d_load(D, load, [](auto d, auto l) { return occupancy<decltype(d)::value, decltype(l)::value>(); });
}

// Whether the split kernel of `load` fits a block here (head_dim 256's two stages of 16 K
// and V rows a warp are 128 KB: more than sm_86 / sm_89 cards allow).
template <int D, int LOAD>
bool split_fits() {
    static const bool f = smem_fits(split_kernel<D, LOAD, kContiguous>(), split_smem<D, LOAD>());
    return f;
}
bool split_fits_for(int D, Load load) {
    return with_d_load(D, load, [](auto d, auto l) { return split_fits<decltype(d)::value, decltype(l)::value>(); });
}

template <int D, int LOAD, int ORDER = kContiguous>
void launch_t(const DecArgs &a, int n_splits, cudaStream_t stream, const KvMaps &maps) {
    configure<D, LOAD, ORDER>();
    const dim3 grid(unsigned(a.n_head_kv * a.n_hgroups), unsigned(n_splits));
    if constexpr (is_kv(LOAD))
        launch_pdl(split_kernel<D, LOAD, ORDER>(), grid, dim3(kNW * 32), split_smem<D, LOAD>(), stream, a, maps);
    else
        launch_pdl(split_kernel<D, LOAD, ORDER>(), grid, dim3(kNW * 32), split_smem<D, LOAD>(), stream, a);
}

// (Interleaved order only with the bulk copies; dynamic only with the K/V slots.)
template <int D>
void launch(const DecArgs &a, int n_splits, const Variant &v, const KvMaps &maps, cudaStream_t stream) {
    const bool il = v.order == kInterleaved, dyn = v.order == kDynamic;
    switch (v.load) {
        case kCpAsyncL2_128: launch_t<D, kCpAsyncL2_128>(a, n_splits, stream, maps); break;
        case kCpAsyncL2_256: launch_t<D, kCpAsyncL2_256>(a, n_splits, stream, maps); break;
        case kBulkRows:
            if (il) launch_t<D, kBulkRows, kInterleaved>(a, n_splits, stream, maps);
            else launch_t<D, kBulkRows>(a, n_splits, stream, maps);
            break;
        case kBulkPairs:
            if (il) launch_t<D, kBulkPairs, kInterleaved>(a, n_splits, stream, maps);
            else launch_t<D, kBulkPairs>(a, n_splits, stream, maps);
            break;
        case kKvTma2:
        case kKvTma3:
            if constexpr (D == 128) {  // (current_variant: head_dim 128 only)
                if (v.load == kKvTma2 && dyn) launch_t<D, kKvTma2, kDynamic>(a, n_splits, stream, maps);
                else if (v.load == kKvTma3 && dyn) launch_t<D, kKvTma3, kDynamic>(a, n_splits, stream, maps);
                else if (v.load == kKvTma2) launch_t<D, kKvTma2>(a, n_splits, stream, maps);
                else launch_t<D, kKvTma3>(a, n_splits, stream, maps);
            }
            break;
        default: launch_t<D, kCpAsync>(a, n_splits, stream, maps); break;
    }
}

// The K/V-slot kernel's encoder of tensor maps, from the driver through the runtime.
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
    static PFN_cuTensorMapEncodeTiled_v12000 fn = nullptr;
    if (!fn) {
        void *p = nullptr;
        cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
#if CUDART_VERSION >= 12050
        TACTIC_CU(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q));
#else
        TACTIC_CU(cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &p, cudaEnableDefault, &q));
#endif
        if (q != cudaDriverEntryPointSuccess || !p) fail(TACTIC_ERR_UNSUPPORTED, "CUDA attention: no cuTensorMapEncodeTiled");
        fn = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
    }
    return fn;
}

// A cache [n_kv][n_ctx][D] as TMA boxes of 64 dims x tk keys x 1 head.
CUtensorMap cache_map(const __half *base, int D, int n_ctx, int n_kv, int tk) {
    CUtensorMap m;
    const cuuint64_t dims[3] = {cuuint64_t(D), cuuint64_t(n_ctx), cuuint64_t(n_kv)};
    const cuuint64_t strides[2] = {cuuint64_t(D) * sizeof(__half), cuuint64_t(n_ctx) * D * sizeof(__half)};
    const cuuint32_t box[3] = {64, cuuint32_t(tk), 1}, elem[3] = {1, 1, 1};
    const CUresult r = tensor_map_encoder()(&m, CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 3, const_cast<__half *>(base), dims,
                                            strides, box, elem, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                            CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) fail(TACTIC_ERR_INTERNAL, "CUDA attention: cuTensorMapEncodeTiled failed");
    return m;
}

template <int D, int HPB>
void launch_wide_merge(const DecodeAttn &d, int32_t *ctr, int n_ctr, uint64_t *mp, int q8_kind, cudaStream_t stream) {
    launch_pdl(attn_merge_wide_kernel<D, HPB>, dim3(unsigned(d.n_head / HPB)), dim3(128 * HPB), 0, stream,
               static_cast<const float *>(d.part_acc), static_cast<const float *>(d.part_ml), d.n_splits, d.n_head,
               d.out, ctr, n_ctr, mp, d.q8, q8_kind);
}

}  // namespace

bool decode_mma_supported(int head_dim) {
    if (device_limits().cc_major < 8) return false;
    // the variants of short and long ranges (attn_kernel 32 switches at kAttnLongKv)
    return split_fits_for(head_dim, current_variant(head_dim, 0).load) &&
           split_fits_for(head_dim, current_variant(head_dim, kAttnLongKv).load);
}

int decode_attention_mma_splits(int n_head, int n_head_kv, int head_dim, int64_t max_len) {
    const int group = n_head / n_head_kv, n_hgroups = (group + kHeads - 1) / kHeads;
    const int64_t blocks_per_split = int64_t(n_head_kv) * n_hgroups;
    // One full wave of blocks (all resident at once: they finish together, no tail),
    // each with at least 4 chunks per warp (shorter splits cost more in start-up and
    // partials than they gain: measured on Gemma's single KV head at 16K-64K).
    const int64_t want =
        std::max<int64_t>(1, int64_t(occupancy_for(head_dim, current_variant(head_dim, max_len).load)) * sm_count() / blocks_per_split);
    const int64_t per_split = kNW * kChunk * 4;
    const int64_t n = std::min<int64_t>(want, std::max<int64_t>(1, (max_len + per_split - 1) / per_split));
    // Then as few splits as give each the same number of the K/V-slot kernel's tiles (128 keys)
    // at most: the longest split is unchanged and fewer partials are merged (8B shape at 32K:
    // 33 splits of 1,008 keys, the last half as long -> 32 of 8 whole tiles; H200: kernel 20
    // 1.1-2.2 us faster a layer at 32K-128K, docs/results/gpu_session16.md).
    constexpr int TK = KvCfg<128, kKvTma2>::TK;
    const int64_t tiles = (max_len + TK - 1) / TK, per = (tiles + n - 1) / n;
    return int(std::max<int64_t>(1, (tiles + per - 1) / per));
}

bool attention_decode_mma_dev(const DecodeAttn &d, int lo, int len, float scale, cudaStream_t stream) {
    const int group = d.n_head / d.n_head_kv;
    DecArgs a{};
    a.q = d.q;
    a.k = d.k;
    a.v = d.v;
    a.n_ctx = d.n_ctx;
    a.n_head = d.n_head;
    a.n_head_kv = d.n_head_kv;
    a.n_hgroups = (group + kHeads - 1) / kHeads;
    a.lo = lo;
    a.len = len;
    a.d_pos = d.d_pos;
    a.window = d.window;
    a.scale = scale;
    a.part_acc = d.part_acc;
    a.part_ml = d.part_ml;
    Variant var = current_variant(d.head_dim, d.d_pos ? d.max_len : len);
    // kDynamic claims its tiles on d.done's counters (zero between launches; the wide merge
    // zeroes them again); without them, the K/V-slot kernel's contiguous splits.
    if (var.order == kDynamic && !d.done) var.order = kContiguous;
    const int n_ctr = d.n_head_kv * a.n_hgroups;
    a.ctr = var.order == kDynamic ? d.done : nullptr;
    a.static8 = var.static8;
    a.probe = d.probe;
    const bool fused = var.merge == kMergeLastBlock && d.done;
    a.done = fused ? d.done : nullptr;
    a.out = d.out;
    KvMaps maps{};
    if (is_kv(var.load)) {
        const int tk = KvCfg<128, kKvTma2>::TK;
        maps.k = cache_map(d.k, d.head_dim, d.n_ctx, d.n_head_kv, tk);
        maps.v = cache_map(d.v, d.head_dim, d.n_ctx, d.n_head_kv, tk);
    }
    switch (d.head_dim) {
        case 64: launch<64>(a, d.n_splits, var, maps, stream); break;
        case 128: launch<128>(a, d.n_splits, var, maps, stream); break;
        case 256: launch<256>(a, d.n_splits, var, maps, stream); break;
        default: fail(TACTIC_ERR_UNSUPPORTED, "CUDA attention: head_dim must be 64, 128 or 256");
    }
    if (fused) return false;
    if (var.merge == kMergeWide) {
        // (the merge blocks' stamps follow the split blocks')
        uint64_t *mp = d.probe ? d.probe + int64_t(d.n_splits) * n_ctr * kProbe : nullptr;
        // d.q8_kind: the merge quantizes out too, HPB heads a block holding whole groups
        const int D = d.head_dim, hpb = d.q8_kind == int(Q8Kind::K) ? std::max(1, 256 / D) : 1;
        const int q8 = d.q8_kind >= 0 && d.n_head % hpb == 0 && hpb * D % (d.q8_kind == int(Q8Kind::K) ? 256 : 32) == 0
                           ? d.q8_kind : -1;
        switch (D * 8 + (q8 >= 0 ? hpb : 1)) {
            case 64 * 8 + 1: launch_wide_merge<64, 1>(d, a.ctr, n_ctr, mp, q8, stream); break;
            case 64 * 8 + 4: launch_wide_merge<64, 4>(d, a.ctr, n_ctr, mp, q8, stream); break;
            case 128 * 8 + 1: launch_wide_merge<128, 1>(d, a.ctr, n_ctr, mp, q8, stream); break;
            case 128 * 8 + 2: launch_wide_merge<128, 2>(d, a.ctr, n_ctr, mp, q8, stream); break;
            default: launch_wide_merge<256, 1>(d, a.ctr, n_ctr, mp, q8, stream); break;
        }
        return q8 >= 0;
    }
    launch_pdl(attn_merge_mma_kernel, dim3(unsigned(d.n_head)), dim3(kMergeWarps * 32), 0, stream,
               static_cast<const float *>(d.part_acc), static_cast<const float *>(d.part_ml), d.n_splits, d.n_head,
               d.head_dim, d.out);
    return false;
}

}  // namespace cuda
}  // namespace tactic
