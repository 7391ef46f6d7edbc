// Decode matvec against 8-bit activations: y = W x for one token, x first quantized
// to int8 blocks exactly as the CPU path quantizes it (quant/quantize.cpp: Q8_K for the
// K-quants, Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1), so the integer block sums
// are the CPU's and GPU and CPU differ only in the order of the f32 additions.
//
// The kernel is built around streaming W once: a warp owns a row and walks it in tiles
// of whole quant blocks (1.7-3.4 KB). Each tile arrives with coalesced loads of the
// widest word the row's alignment allows (16 bytes on the 8B shapes, whatever the
// format's own block alignment: Q6_K and Q8_0 blocks are 2-byte aligned), goes through
// the warp's slice of shared memory, and is decoded from there with dp4a; the loads of
// tile t+1 are issued before tile t is decoded, so a warp keeps a whole tile in flight.
#include <type_traits>
#include <vector>

#include "cuda_backend.h"
#include "cuda_ops.cuh"
#include "cuda_util.cuh"
#include "fused_ops.cuh"
#include "pdl.cuh"
#include "q8_quantize.cuh"
#include "quant_blocks.cuh"

namespace tactic {
namespace cuda {

namespace {

constexpr int kWarps = 4;  // warps (rows) per block

// ---- activation quantizers: q8_quantize.cuh's groups, a warp each ----------------------

__global__ void quantize_q8k_kernel(const float *__restrict__ x, int n_groups, Q8Act a, __half *__restrict__ f16) {
    pdl_wait();
    pdl_trigger();
    const int g = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (g < n_groups) quantize_q8k_group(x, g, lane, a, f16);
}

__global__ void quantize_q8b_kernel(const float *__restrict__ x, int n_groups, bool q8_1, Q8Act a,
                                    __half *__restrict__ f16) {
    pdl_wait();
    pdl_trigger();
    const int g = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (g < n_groups) quantize_q8b_group(x, g, lane, q8_1, a, f16);
}

// Decode fusion: one row of RMSNorm (the block's), written to y, then y quantized by the
// block's warps with the functions above: the bytes of rms_norm_kernel + quantize_q8*.
constexpr int kNormQThreads = 256;
__device__ __forceinline__ void rms_norm_q8_row(const float *__restrict__ x, const float *__restrict__ w, int n,
                                                float eps, int kind, float *y, const Q8Act &a) {
    rms_norm_row<kNormQThreads>(x, w, n, eps, y);
    __syncthreads();  // the block's writes of y are visible to the whole block
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int n_groups = n / (kind == int(Q8Kind::K) ? 256 : 32);
    for (int g = warp; g < n_groups; g += kNormQThreads / 32) {
        if (kind == int(Q8Kind::K)) quantize_q8k_group(y, g, lane, a, nullptr);
        else quantize_q8b_group(y, g, lane, kind == int(Q8Kind::B1), a, nullptr);
    }
}
__global__ void __launch_bounds__(kNormQThreads)
    rms_norm_q8_kernel(const float *__restrict__ x, const float *__restrict__ w, int n, float eps, int kind,
                       float *y, Q8Act a) {  // y not __restrict__: it is read back
    pdl_wait();
    pdl_trigger();
    rms_norm_q8_row(x, w, n, eps, kind, y, a);
}

// Decode fusion for post-norms (Gemma): t = RMSNorm(t) * wt in place (a branch's output
// norm), x += t (the residual add), then rms_norm_q8_kernel's work on x (the next
// pre-norm): the bytes of rms_norm_kernel (same block size) + add_kernel + that kernel.
__global__ void __launch_bounds__(kNormQThreads)
    add_norm_rms_norm_q8_kernel(float *t, const float *__restrict__ wt, float eps_t, float *x,
                                const float *__restrict__ w, int n, float eps, int kind, float *y, Q8Act a) {
    pdl_wait();
    pdl_trigger();
    rms_norm_row<kNormQThreads>(t, wt, n, eps_t, t);
    __syncthreads();  // rms_norm_row's shared sums are reused below
    for (int i = threadIdx.x; i < n; i += kNormQThreads) x[i] += t[i];
    __syncthreads();
    rms_norm_q8_row(x, w, n, eps, kind, y, a);
}

// ---- per-type tiles and block dot products ------------------------------------------

// NB blocks per tile, LPB lanes per block (each lane takes BS / LPB weights of it).
template <int T> struct Tile;
template <> struct Tile<TACTIC_TYPE_Q4_0> { static constexpr int NB = 128, LPB = 1; };
template <> struct Tile<TACTIC_TYPE_Q4_1> { static constexpr int NB = 128, LPB = 1; };
template <> struct Tile<TACTIC_TYPE_Q5_0> { static constexpr int NB = 128, LPB = 1; };
template <> struct Tile<TACTIC_TYPE_Q5_1> { static constexpr int NB = 128, LPB = 1; };
template <> struct Tile<TACTIC_TYPE_Q8_0> { static constexpr int NB = 64, LPB = 1; };
template <> struct Tile<TACTIC_TYPE_Q4_K> { static constexpr int NB = 16, LPB = 8; };
template <> struct Tile<TACTIC_TYPE_Q5_K> { static constexpr int NB = 16, LPB = 8; };
template <> struct Tile<TACTIC_TYPE_Q6_K> { static constexpr int NB = 16, LPB = 4; };


// N 32-bit words from shared memory at a 2-byte aligned offset `off` of s (aligned
// reads and funnel shifts; reads one word past the end: tiles carry 16 bytes of slack).
template <int N>
__device__ __forceinline__ void lds_words(const uint8_t *s, int off, uint32_t *out) {
    const uint32_t *w = reinterpret_cast<const uint32_t *>(s) + (off >> 2);
    const int sh = (off & 3) * 8;
    uint32_t prev = w[0];
#pragma unroll
    for (int i = 0; i < N; i++) {
        const uint32_t next = w[i + 1];
        out[i] = __funnelshift_r(prev, next, sh);
        prev = next;
    }
}
__device__ __forceinline__ float lds_f16(const uint8_t *s, int off) {
    return h2f(*reinterpret_cast<const uint16_t *>(s + off));
}
__device__ __forceinline__ int dp4a4(const uint32_t *w, int4 x, int acc) {
    acc = __dp4a(int(w[0]), x.x, acc);
    acc = __dp4a(int(w[1]), x.y, acc);
    acc = __dp4a(int(w[2]), x.z, acc);
    return __dp4a(int(w[3]), x.w, acc);
}
__device__ __forceinline__ int4 ldx(const int8_t *p) { return *reinterpret_cast<const int4 *>(p); }

// Q4_K / Q5_K, part c (8 a block) of a block from its words: hdr = bytes 0..15 (d, dmin,
// the 12 scale bytes), qv = qs bytes 16c .. 16c+15 = elements 64j + 16h + t (low nibbles,
// sub-block 2j) and 64j + 32 + 16h + t (high nibbles, sub-block 2j+1), j = c/2, h = c%2;
// Q5_K: hv = qh bytes 16h .. 16h+15. xl, xh: the activations of those elements; bs0, bs2:
// the bsums of their 16-runs; dx: the activation block's d. v4 and v5 both call this, so
// their block sums are the same bits.
template <bool five>
__device__ __forceinline__ float q45k_part_dot(uint4 hdr, uint4 qv, uint4 hv, int part, int4 xl, int4 xh,
                                               float bs0, float bs2, float dx) {
    const int j = part >> 1;
    uint32_t lo[4] = {qv.x, qv.y, qv.z, qv.w}, hi[4];
    const uint32_t qh[4] = {hv.x, hv.y, hv.z, hv.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        hi[i] = (lo[i] >> 4) & 0x0f0f0f0fu;
        lo[i] &= 0x0f0f0f0fu;
        if constexpr (five) {  // bit 2j / 2j+1 of qh[16h + t]
            lo[i] |= ((qh[i] >> (2 * j)) & 0x01010101u) << 4;
            hi[i] |= ((qh[i] >> (2 * j + 1)) & 0x01010101u) << 4;
        }
    }
    const int dot_a = dp4a4(lo, xl, 0), dot_h = dp4a4(hi, xh, 0);
    // the 6-bit scales / mins of sub-blocks 2j, 2j+1 (bytes 2j%4, 2j%4+1 of these words)
    const uint32_t scw = j < 2 ? hdr.y & 0x3f3f3f3fu : (hdr.w & 0x0f0f0f0fu) | (((hdr.y >> 6) & 0x03030303u) << 4);
    const uint32_t mnw = j < 2 ? hdr.z & 0x3f3f3f3fu
                               : ((hdr.w >> 4) & 0x0f0f0f0fu) | (((hdr.z >> 6) & 0x03030303u) << 4);
    const int sh = 16 * (j & 1);
    const float sc_a = float((scw >> sh) & 255u), sc_h = float((scw >> (sh + 8)) & 255u);
    const float m_a = float((mnw >> sh) & 255u), m_h = float((mnw >> (sh + 8)) & 255u);
    // Integers up to 63 * 30720 and 63 * 4096: exact in f32.
    const float isum = sc_a * float(dot_a) + sc_h * float(dot_h);
    const float imin = m_a * bs0 + m_h * bs2;
    return dx * (h2f(hdr.x & 0xffffu) * isum - h2f(hdr.x >> 16) * imin);
}

// The activations lane `part` of block gb multiplies, loaded once for every row that
// shares them: x[] 16-byte runs of q, f[] bsums / block sums, d the block's scale.
struct XPart {
    int4 x[4];
    float f[4];
    float d;
};
template <int T>
__device__ __forceinline__ XPart load_xpart(const Q8Act &a, int64_t gb, int part) {
    XPart p;
    if constexpr (T == TACTIC_TYPE_Q8_0) {
        const int8_t *xb = a.q + gb * 32;
        p.x[0] = ldx(xb), p.x[1] = ldx(xb + 16);
    } else if constexpr (T == TACTIC_TYPE_Q4_0 || T == TACTIC_TYPE_Q5_0 || T == TACTIC_TYPE_Q4_1 ||
                         T == TACTIC_TYPE_Q5_1) {
        const int8_t *xb = a.q + gb * 32;
        p.x[0] = ldx(xb), p.x[1] = ldx(xb + 16);
        p.f[0] = a.s[gb];
    } else if constexpr (T == TACTIC_TYPE_Q4_K || T == TACTIC_TYPE_Q5_K) {
        const int j = part >> 1, h = part & 1;
        const int8_t *xb = a.q + gb * 256 + 64 * j + 16 * h;
        const float *bs = a.s + gb * 16 + 4 * j + h;
        p.x[0] = ldx(xb), p.x[1] = ldx(xb + 32);
        p.f[0] = bs[0], p.f[1] = bs[2];
    } else {  // Q6_K
        const int hh = part >> 1, pp = part & 1;
        const int8_t *xb = a.q + gb * 256 + 128 * hh + 16 * pp;
        const float *bs = a.s + gb * 16 + 8 * hh + pp;
#pragma unroll
        for (int k = 0; k < 4; k++) p.x[k] = ldx(xb + 32 * k), p.f[k] = bs[2 * k];
    }
    p.d = a.d[gb];
    return p;
}

// Lane's share of a block (at byte `off` of the tile s) against its activations xp.
template <int T>
__device__ __forceinline__ float block_dot_x(const uint8_t *s, int off, int part, const XPart &xp) {
    if constexpr (T == TACTIC_TYPE_Q8_0) {
        uint32_t w[8];
        lds_words<8>(s, off + 2, w);
        const int dot = dp4a4(w + 4, xp.x[1], dp4a4(w, xp.x[0], 0));
        return lds_f16(s, off) * xp.d * float(dot);
    } else if constexpr (T == TACTIC_TYPE_Q4_0 || T == TACTIC_TYPE_Q5_0 || T == TACTIC_TYPE_Q4_1 ||
                         T == TACTIC_TYPE_Q5_1) {
        constexpr bool five = T == TACTIC_TYPE_Q5_0 || T == TACTIC_TYPE_Q5_1;
        constexpr bool has_min = T == TACTIC_TYPE_Q4_1 || T == TACTIC_TYPE_Q5_1;
        constexpr int qs_off = (has_min ? 4 : 2) + (five ? 4 : 0);
        uint32_t q[4], qh[1] = {0};
        lds_words<4>(s, off + qs_off, q);
        if constexpr (five) lds_words<1>(s, off + (has_min ? 4 : 2), qh);
        uint32_t lo[4], hi[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            lo[i] = q[i] & 0x0f0f0f0fu;
            hi[i] = (q[i] >> 4) & 0x0f0f0f0fu;
            if constexpr (five) {
                lo[i] |= spread4(qh[0] >> (4 * i)) << 4;
                hi[i] |= spread4(qh[0] >> (16 + 4 * i)) << 4;
            }
        }
        const int dot = dp4a4(hi, xp.x[1], dp4a4(lo, xp.x[0], 0));
        const float d = lds_f16(s, off) * xp.d;
        if constexpr (has_min) return fmaf(d, float(dot), lds_f16(s, off + 2) * xp.f[0]);
        else return d * (float(dot) - (five ? 16.f : 8.f) * xp.f[0]);
    } else if constexpr (T == TACTIC_TYPE_Q4_K || T == TACTIC_TYPE_Q5_K) {
        constexpr bool five = T == TACTIC_TYPE_Q5_K;
        const int h = part & 1;
        const uint4 hdr = *reinterpret_cast<const uint4 *>(s + off);
        const uint4 qv = *reinterpret_cast<const uint4 *>(s + off + (five ? 48 : 16) + 16 * part);
        uint4 hv = make_uint4(0, 0, 0, 0);
        if constexpr (five) hv = *reinterpret_cast<const uint4 *>(s + off + 16 + 16 * h);
        return q45k_part_dot<five>(hdr, qv, hv, part, xp.x[0], xp.x[1], xp.f[0], xp.f[1], xp.d);
    } else {  // Q6_K
        // part = 2hh + p: elements 128hh + 32k + 16p + t (t < 16) for k = 0..3; ql bytes
        // 64hh + 16p + t (k = 0, 2) and 64hh + 32 + 16p + t (k = 1, 3), qh 32hh + 16p + t.
        const int hh = part >> 1, p = part & 1;
        uint32_t A[4], B[4], H[4], S[2];
        lds_words<4>(s, off + 64 * hh + 16 * p, A);
        lds_words<4>(s, off + 64 * hh + 32 + 16 * p, B);
        lds_words<4>(s, off + 128 + 32 * hh + 16 * p, H);
        lds_words<2>(s, off + 192 + 8 * hh, S);
        int isum = 0;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            uint32_t q6[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const uint32_t src = (k & 1) ? B[i] : A[i];
                q6[i] = ((k < 2 ? src : src >> 4) & 0x0f0f0f0fu) | (((H[i] >> (2 * k)) & 0x03030303u) << 4);
            }
            const int dot = dp4a4(q6, xp.x[k], 0) - 32 * int(xp.f[k]);
            const int sb = p + 2 * k;  // scale byte of this 16-element run
            const int sc = int(int8_t((S[sb >> 2] >> (8 * (sb & 3))) & 255u));
            isum += sc * dot;
        }
        return lds_f16(s, off + 208) * xp.d * float(isum);
    }
}

// Lane's share of block gb (at byte `off` of the tile s) against the activations.
template <int T>
__device__ __forceinline__ float block_dot(const uint8_t *s, int off, int part, int64_t gb, const Q8Act &a) {
    return block_dot_x<T>(s, off, part, load_xpart<T>(a, gb, part));
}

// Copies of LW bytes global -> shared that complete asynchronously (cp.async, sm_80 and
// later; 2-byte words, for rows only that aligned, and older GPUs go through registers).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define TACTIC_CP_ASYNC 1
#endif
template <int LW> struct Word;
template <> struct Word<16> { using type = uint4; };
template <> struct Word<8> { using type = uint2; };
template <> struct Word<4> { using type = uint32_t; };
template <> struct Word<2> { using type = uint16_t; };
template <int LW>
__device__ __forceinline__ void copy_async(uint8_t *dst, const uint8_t *src) {
#ifdef TACTIC_CP_ASYNC
    const unsigned d = unsigned(__cvta_generic_to_shared(dst));
    if constexpr (LW == 16) asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d), "l"(src));
    else if constexpr (LW == 8) asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" ::"r"(d), "l"(src));
    else if constexpr (LW == 4) asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(d), "l"(src));
    else
#endif
    {
        using Wd = typename Word<LW>::type;
        *reinterpret_cast<Wd *>(dst) = *reinterpret_cast<const Wd *>(src);
    }
}
__device__ __forceinline__ void copy_commit() {
#ifdef TACTIC_CP_ASYNC
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int N>
__device__ __forceinline__ void copy_wait() {
#ifdef TACTIC_CP_ASYNC
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

// A warp per row; ST tiles of the row in flight per warp (ST - 1 being copied while one
// is decoded), each in its own shared-memory stage.
template <int T, int LW, int ST>
__global__ void __launch_bounds__(kWarps * 32)
    matvec_q8_kernel(const uint8_t *__restrict__ W, size_t row_bytes, int64_t n_rows, int nb, Q8Act a,
                     float *__restrict__ y) {
    using Tl = Tile<T>;
    constexpr int TS = QTraits<T>::TS, TB = Tl::NB * TS, NW = TB / LW, NL = (NW + 31) / 32;
    constexpr int IPL = Tl::NB * Tl::LPB / 32;  // block shares per lane per tile
    static_assert(TB % 16 == 0 && Tl::NB * Tl::LPB % 32 == 0 && ST >= 2, "tile shape");
    __shared__ __align__(16) uint8_t smem[kWarps][ST][TB + 16];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t row = int64_t(blockIdx.x) * kWarps + warp;
    if (row >= n_rows) {  // a whole warp: no block-wide barrier below
        pdl_wait();
        return;
    }
    const uint8_t *wr = W + row * row_bytes;
    const int n_tiles = (nb + Tl::NB - 1) / Tl::NB;
    auto issue = [&](int t) {
        const size_t base = size_t(t) * TB, rem = row_bytes - base;
        const int nw = rem >= size_t(TB) ? NW : int(rem / LW);
        uint8_t *dst = smem[warp][t % ST];
#pragma unroll
        for (int i = 0; i < NL; i++) {
            const int w = lane + 32 * i;
            if (w < nw) copy_async<LW>(dst + w * LW, wr + base + size_t(w) * LW);
        }
    };
#pragma unroll
    for (int t = 0; t < ST - 1; t++) {
        if (t < n_tiles) issue(t);
        copy_commit();  // one group per tile, empty ones included, so the count below holds
    }
    pdl_wait();  // the weights above are static; the activations and y come after
    pdl_trigger();
    float acc = 0.f;
    for (int t = 0; t < n_tiles; t++) {
        copy_wait<ST - 2>();  // this lane's copies of tile t have landed
        __syncwarp();         // and every lane's; the stage refilled next was read last iteration
        if (t + ST - 1 < n_tiles) issue(t + ST - 1);
        copy_commit();
        const uint8_t *s = smem[warp][t % ST];
        const int b0 = t * Tl::NB;
#pragma unroll
        for (int k = 0; k < IPL; k++) {
            const int flat = lane + 32 * k, bi = flat / Tl::LPB;
            if (b0 + bi < nb) acc += block_dot<T>(s, bi * TS, flat % Tl::LPB, int64_t(b0 + bi), a);
        }
        __syncwarp();  // every lane is done with stage t % ST before it is refilled
    }
    acc = warp_sum(acc);
    if (lane == 0) y[row] = acc;
}

// v4: the same tiles and block dots as v3 (so the same sums, bit for bit), with the
// copy pipeline of each warp spanning rows: a grid of at most one resident wave, each
// warp taking rows gw, gw + (warps in the grid), ... and its stages refilled from the
// next row while the current one is decoded, so no warp drains between rows and no
// block waits to be launched. With nm = 2 a warp takes row r of w0 and then of w1
// (gate and up), and the epilogue combines them; with a residual it adds res[r].
struct MvArgs {
    const uint8_t *w0 = nullptr, *w1 = nullptr;  // w1: nm == 2, same type and shape as w0
    size_t row_bytes = 0;
    int64_t n_rows = 0;
    int nb = 0, nm = 1;
    MvEpilogue epi = MvEpilogue::Plain;
    const float *res = nullptr;
    float *y = nullptr;
    // More matrices of w0's type and width after w0's rows, plain epilogue (decode's wq,
    // wk, wv in one launch): rows [n_rows, n_rows + n2) of w2 into y2, then n3 of w3 into y3.
    const uint8_t *w2 = nullptr, *w3 = nullptr;
    int64_t n2 = 0, n3 = 0;
    float *y2 = nullptr, *y3 = nullptr;
};

template <int T, int LW, int ST>
__global__ void __launch_bounds__(kWarps * 32) matvec_q8_v4_kernel(MvArgs m, Q8Act a) {
    using Tl = Tile<T>;
    constexpr int TS = QTraits<T>::TS, TB = Tl::NB * TS, NW = TB / LW, NL = (NW + 31) / 32;
    constexpr int IPL = Tl::NB * Tl::LPB / 32;
    static_assert(TB % 16 == 0 && Tl::NB * Tl::LPB % 32 == 0 && ST >= 2, "tile shape");
    __shared__ __align__(16) uint8_t smem[kWarps][ST][TB + 16];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t gw = int64_t(blockIdx.x) * kWarps + warp, tw = int64_t(gridDim.x) * kWarps;
    const int64_t all_rows = m.n_rows + m.n2 + m.n3;
    if (gw >= all_rows) {  // a whole warp: no block-wide barrier below
        pdl_wait();
        return;
    }
    const int n_tiles = (m.nb + Tl::NB - 1) / Tl::NB;
    // the warp's work in order: its rows i = 0.., each matrix mi of a row, each tile t
    const int n_items = int((all_rows - gw + tw - 1) / tw) * m.nm * n_tiles;
    struct Cursor {
        int i = 0, mi = 0, t = 0;
    };
    auto advance = [&](Cursor &c) {
        if (++c.t == n_tiles) {
            c.t = 0;
            if (++c.mi == m.nm) c.mi = 0, c.i++;
        }
    };
    Cursor in, out;  // the next tile to copy, the next to decode
    auto issue = [&](int stage) {
        const int64_t row = gw + in.i * tw;
        const uint8_t *wr = row < m.n_rows  ? (in.mi ? m.w1 : m.w0) + row * int64_t(m.row_bytes)
                            : row - m.n_rows < m.n2 ? m.w2 + (row - m.n_rows) * int64_t(m.row_bytes)
                                                     : m.w3 + (row - m.n_rows - m.n2) * int64_t(m.row_bytes);
        const size_t base = size_t(in.t) * TB, rem = m.row_bytes - base;
        const int nw = rem >= size_t(TB) ? NW : int(rem / LW);
        uint8_t *dst = smem[warp][stage];
#pragma unroll
        for (int j = 0; j < NL; j++) {
            const int w = lane + 32 * j;
            if (w < nw) copy_async<LW>(dst + w * LW, wr + base + size_t(w) * LW);
        }
        advance(in);
    };
#pragma unroll
    for (int k = 0; k < ST - 1; k++) {
        if (k < n_items) issue(k);
        copy_commit();
    }
    // PDL (pdl.cuh): the first tiles (weights, static) are on their way; x and res were
    // written by earlier kernels
    pdl_wait();
    pdl_trigger();
    float acc = 0.f, first = 0.f;
    for (int k = 0; k < n_items; k++) {
        copy_wait<ST - 2>();
        __syncwarp();
        if (k + ST - 1 < n_items) issue((k + ST - 1) % ST);
        copy_commit();
        const uint8_t *s = smem[warp][k % ST];
        const int b0 = out.t * Tl::NB;
#pragma unroll
        for (int j = 0; j < IPL; j++) {
            const int flat = lane + 32 * j, bi = flat / Tl::LPB;
            if (b0 + bi < m.nb) acc += block_dot<T>(s, bi * TS, flat % Tl::LPB, int64_t(b0 + bi), a);
        }
        __syncwarp();
        if (out.t == n_tiles - 1) {  // a row of one matrix is complete
            const float sum = warp_sum(acc);
            acc = 0.f;
            if (out.mi + 1 < m.nm) {
                first = sum;
            } else if (lane == 0) {
                const int64_t row = gw + out.i * tw;
                float y = sum;
                if (m.epi == MvEpilogue::Residual) y = m.res[row] + sum;
                else if (m.epi != MvEpilogue::Plain) y = gated_value(first, sum, m.epi == MvEpilogue::Gelu);
                if (row < m.n_rows) m.y[row] = y;
                else if (row - m.n_rows < m.n2) m.y2[row - m.n_rows] = y;
                else m.y3[row - m.n_rows - m.n2] = y;
            }
        }
        advance(out);
    }
}

// Resident blocks per SM of a v4 instance (0 until asked once; asked outside graph
// capture by matvec_q8_prepare for the instances decode uses).
template <int T, int LW, int ST>
int v4_blocks_per_sm() {
    static int n = 0;
    if (n == 0) {
        int b = 0;
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, matvec_q8_v4_kernel<T, LW, ST>, kWarps * 32, 0) !=
                cudaSuccess ||
            b < 1) {
            cudaGetLastError();
            b = 4;
        }
        n = b;
    }
    return n;
}

template <int T, int LW, int ST>
void launch_v4(const MvArgs &m, const Q8Act &a, cudaStream_t stream) {
    // As many rows per warp as one resident wave needs, then as few warps as that allows,
    // so every warp has the same number of rows (or one less). "matvec_rows" 1: one row
    // per warp and a block per 4 rows, as v3 launches (a variant: on the H200 v3 was
    // faster than v4's one wave on 14336x4096, not measured with this kernel).
    const int64_t cap = int64_t(v4_blocks_per_sm<T, LW, ST>()) * sm_count() * kWarps;
    const int64_t rows = m.n_rows + m.n2 + m.n3;
    const int64_t rows_per_warp = options().matvec_rows == 1 ? 1 : (rows + cap - 1) / cap;
    const int64_t warps = (rows + rows_per_warp - 1) / rows_per_warp;
    const unsigned blocks = unsigned((warps + kWarps - 1) / kWarps);
    launch_pdl(matvec_q8_v4_kernel<T, LW, ST>, dim3(blocks), dim3(kWarps * 32), 0, stream, m, a);
}

// ---- v5: the weights straight into registers (Q4_K, Q5_K) -----------------------------
// No shared memory: every lane loads its slices of a block with 16-byte loads that skip
// L1 (the weights are read once; x stays in L1 for the other rows), and a warp issues all
// its loads of a chunk of C steps of each of its R rows before it decodes any of them.
// A step is 4 blocks of a row, 8 lanes a block, each lane the header, its 16 qs bytes
// (and Q5_K's 16 qh bytes): the same part of the same blocks in the same order as v4, so
// the same sums, bit for bit. The R rows of a warp share the activation loads (for every
// 144-byte block v4 read ~350 bytes of x, bsums and scales through L1, for one row); with
// the gated epilogue they are row r of w0 and of w1. The first chunk's loads are meant
// to be issued before pdl_wait() (the weights are static; x and res come from earlier
// kernels): see option matvec_wait below for what ptxas makes of that.
// The formats whose blocks are not 16-byte aligned (Q6_K, Q8_0, Q4_0, ...) take v5s
// below: v4's shared-memory tiles, R rows a warp on the same activation loads.

__device__ __forceinline__ uint4 ld_stream(const uint8_t *p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p));
    return r;
#else
    return __ldg(reinterpret_cast<const uint4 *>(p));
#endif
}

// NU 16-byte words a lane loads per block; C(R) steps a chunk (R * C * NU * 4 registers
// of weights a lane: 64 or 72 for two rows a warp).
template <int T> struct V5 { static constexpr bool regs = false; };
template <> struct V5<TACTIC_TYPE_Q4_K> {
    static constexpr bool regs = true;
    static constexpr int NU = 2;
    __host__ __device__ static constexpr int C(int R) { return 8 / R; }
};
template <> struct V5<TACTIC_TYPE_Q5_K> {
    static constexpr bool regs = true;
    static constexpr int NU = 3;
    __host__ __device__ static constexpr int C(int R) { return R == 1 ? 6 : R == 2 ? 3 : 2; }
};

// A v5 warp's rows: slot k multiplies wr[k] (null: no row) into output row orow[k]. Plain
// epilogues: virtual rows gw * R + k over w0, w2, w3; gated (R == 2): row gw of w0 and w1.
template <int R>
__device__ __forceinline__ void v5_rows(const MvArgs &m, int64_t gw, const uint8_t *(&wr)[R], int64_t (&orow)[R]) {
    const int64_t all_rows = m.n_rows + m.n2 + m.n3;
#pragma unroll
    for (int k = 0; k < R; k++) {
        if (R == 2 && m.nm == 2) {
            orow[k] = gw;
            wr[k] = gw < m.n_rows ? (k ? m.w1 : m.w0) + gw * int64_t(m.row_bytes) : nullptr;
        } else {
            const int64_t row = gw * R + k;
            orow[k] = row;
            wr[k] = row < m.n_rows            ? m.w0 + row * int64_t(m.row_bytes)
                    : row - m.n_rows < m.n2   ? m.w2 + (row - m.n_rows) * int64_t(m.row_bytes)
                    : row < all_rows          ? m.w3 + (row - m.n_rows - m.n2) * int64_t(m.row_bytes)
                                              : nullptr;
        }
    }
}

// The warp's sums through the epilogue (v4's, the same operations).
template <int R>
__device__ __forceinline__ void v5_store(const MvArgs &m, int64_t gw, const uint8_t *const (&wr)[R],
                                         const int64_t (&orow)[R], const float (&acc)[R]) {
    float sum[R];
#pragma unroll
    for (int k = 0; k < R; k++) sum[k] = warp_sum(acc[k]);
    if (threadIdx.x % 32 != 0) return;
    if constexpr (R == 2) {
        if (m.nm == 2) {
            if (wr[0]) m.y[gw] = gated_value(sum[0], sum[1], m.epi == MvEpilogue::Gelu);
            return;
        }
    }
#pragma unroll
    for (int k = 0; k < R; k++) {
        if (!wr[k]) continue;
        const int64_t row = orow[k];
        float y = sum[k];
        if (m.epi == MvEpilogue::Residual) y = m.res[row] + y;
        if (row < m.n_rows) m.y[row] = y;
        else if (row - m.n_rows < m.n2) m.y2[row - m.n_rows] = y;
        else m.y3[row - m.n_rows - m.n2] = y;
    }
}

// Where v5's first chunk of weights is loaded (option matvec_wait). The weights are static,
// so their loads may be issued before pdl_wait() (pdl.cuh), but ptxas schedules the wait
// above ld.global.nc loads whose results are only used after it (SASS: the wait first, then
// all 16-18 loads of the chunk), so under PDL v5 did not load early. EARLY (option 1, the
// default): the first chunk with coherent loads (ld.global without .nc), which ptxas keeps
// above the wait (SASS: every load of the chunk, then the wait), the later chunks as before.
// (Through shared memory with cp.async, which ptxas also keeps above it, was slower: 33-37 KB
// of shared memory a block; measured in docs/PERFORMANCE.md.)
__device__ __forceinline__ uint4 ld_weights_coherent(const uint8_t *p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    uint4 r;
    asm volatile("ld.global.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p)
                 : "memory");
    return r;
#else
    return ld_stream(p);
#endif
}

template <int T, int R, int WPB, bool EARLY>
__global__ void __launch_bounds__(WPB * 32) matvec_q8_v5_kernel(MvArgs m, Q8Act a) {
    constexpr bool five = T == TACTIC_TYPE_Q5_K;
    constexpr int TS = QTraits<T>::TS, NU = V5<T>::NU, C = V5<T>::C(R);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int part = lane & 7, bsub = lane >> 3, h = part & 1;
    const int nb = m.nb, n_steps = (nb + 3) / 4;
    const int64_t gw = int64_t(blockIdx.x) * WPB + warp;
    const uint8_t *wr[R];
    int64_t orow[R];
    v5_rows<R>(m, gw, wr, orow);
    uint4 w[C][R][NU];
    // a lane's slices of a block: the header, its 16 qs bytes, (Q5_K) its 16 qh bytes
    auto word_off = [&](int u) { return u == 0 ? 0 : u == 1 ? (five ? 48 : 16) + 16 * part : 16 + 16 * h; };
    auto load = [&](int s0, bool coherent) {
#pragma unroll
        for (int c = 0; c < C; c++) {
            const int b = 4 * (s0 + c) + bsub;
#pragma unroll
            for (int k = 0; k < R; k++) {
#pragma unroll
                for (int u = 0; u < NU; u++) {
                    if (wr[k] && b < nb) {
                        const uint8_t *p = wr[k] + int64_t(b) * TS + word_off(u);
                        w[c][k][u] = coherent ? ld_weights_coherent(p) : ld_stream(p);
                    } else {
                        w[c][k][u] = make_uint4(0, 0, 0, 0);
                    }
                }
            }
        }
    };
    load(0, EARLY);
    pdl_wait();  // x and res were written by earlier kernels
    pdl_trigger();
    float acc[R];
#pragma unroll
    for (int k = 0; k < R; k++) acc[k] = 0.f;
    for (int s0 = 0; s0 < n_steps; s0 += C) {
        if (s0) load(s0, false);
#pragma unroll
        for (int c = 0; c < C; c++) {
            const int b = 4 * (s0 + c) + bsub;
            if (b < nb) {
                const XPart xp = load_xpart<T>(a, b, part);
#pragma unroll
                for (int k = 0; k < R; k++)
                    if (wr[k]) acc[k] += q45k_part_dot<five>(w[c][k][0], w[c][k][1], w[c][k][NU - 1], part,
                                                             xp.x[0], xp.x[1], xp.f[0], xp.f[1], xp.d);
            }
        }
    }
    v5_store<R>(m, gw, wr, orow, acc);
}

// v5s: NB blocks a tile (one block part a lane: the lane -> block map of v4, so the same
// sums), R row tiles a stage, ST stages through cp.async; x loaded once for the R rows.
template <int T> struct Tile5 { static constexpr int NB = 64, LPB = 1; };
template <> struct Tile5<TACTIC_TYPE_Q8_0> { static constexpr int NB = 32, LPB = 1; };
template <> struct Tile5<TACTIC_TYPE_Q6_K> { static constexpr int NB = 8, LPB = 4; };
template <> struct Tile5<TACTIC_TYPE_Q4_K> { static constexpr int NB = 8, LPB = 8; };  // a benchmark variant
template <> struct Tile5<TACTIC_TYPE_Q5_K> { static constexpr int NB = 8, LPB = 8; };

template <int T, int R, int ST, int WPB>
__global__ void __launch_bounds__(WPB * 32) matvec_q8_v5s_kernel(MvArgs m, Q8Act a) {
    constexpr int LW = 16, TS = QTraits<T>::TS, NB = Tile5<T>::NB, LPB = Tile5<T>::LPB, TB = NB * TS;
    constexpr int NW = TB / LW, NL = (NW + 31) / 32, IPL = NB * LPB / 32;
    static_assert(TB % 16 == 0 && NB * LPB % 32 == 0 && ST >= 2, "tile shape");
    __shared__ __align__(16) uint8_t smem[WPB][ST][R][TB + 16];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int nb = m.nb, n_tiles = (nb + NB - 1) / NB;
    const int64_t gw = int64_t(blockIdx.x) * WPB + warp;
    const uint8_t *wr[R];
    int64_t orow[R];
    v5_rows<R>(m, gw, wr, orow);
    if (!wr[0]) {  // a whole warp (no block-wide barrier below); its rows are all past the end
        pdl_wait();
        return;
    }
    auto issue = [&](int t) {
        const size_t base = size_t(t) * TB, rem = m.row_bytes - base;
        const int nw = rem >= size_t(TB) ? NW : int(rem / LW);
#pragma unroll
        for (int k = 0; k < R; k++) {
            if (!wr[k]) continue;
            uint8_t *dst = smem[warp][t % ST][k];
#pragma unroll
            for (int i = 0; i < NL; i++) {
                const int wi = lane + 32 * i;
                if (wi < nw) copy_async<LW>(dst + wi * LW, wr[k] + base + size_t(wi) * LW);
            }
        }
    };
#pragma unroll
    for (int t = 0; t < ST - 1; t++) {
        if (t < n_tiles) issue(t);
        copy_commit();
    }
    pdl_wait();  // the first tiles (weights, static) are on their way; x and res come after
    pdl_trigger();
    float acc[R];
#pragma unroll
    for (int k = 0; k < R; k++) acc[k] = 0.f;
    for (int t = 0; t < n_tiles; t++) {
        copy_wait<ST - 2>();
        __syncwarp();
        if (t + ST - 1 < n_tiles) issue(t + ST - 1);
        copy_commit();
        const int b0 = t * NB;
#pragma unroll
        for (int i = 0; i < IPL; i++) {
            const int flat = lane + 32 * i, bi = flat / LPB, part = flat % LPB;
            if (b0 + bi < nb) {
                const XPart xp = load_xpart<T>(a, int64_t(b0 + bi), part);
#pragma unroll
                for (int k = 0; k < R; k++)
                    if (wr[k]) acc[k] += block_dot_x<T>(smem[warp][t % ST][k], bi * TS, part, xp);
            }
        }
        __syncwarp();
    }
    v5_store<R>(m, gw, wr, orow, acc);
}

// v5 where every matrix is 16-byte aligned (rows included): v5 for Q4_K / Q5_K, v5s for
// the other formats; false: use v4. Two rows a warp (gated: row r of w0 and of w1) in
// blocks of 4 warps; "matvec_rows" (benchmark variants) 1: a row a warp; 4: four (v5
// only, plain epilogues); 8: blocks of one warp (a block's slots are refilled when its
// last warp ends: smaller blocks keep an SM's loads from moving in lockstep); 2: Q4_K /
// Q5_K through v5s's shared-memory tiles too.
template <int T, int R, int WPB, bool SMEM>
void launch_v5_shape(const MvArgs &m, int64_t warps, const Q8Act &a, cudaStream_t stream) {
    const dim3 grid(unsigned((warps + WPB - 1) / WPB)), block(WPB * 32);
    if constexpr (V5<T>::regs && !SMEM) {
        if (options().matvec_wait) launch_pdl(matvec_q8_v5_kernel<T, R, WPB, true>, grid, block, 0, stream, m, a);
        else launch_pdl(matvec_q8_v5_kernel<T, R, WPB, false>, grid, block, 0, stream, m, a);
    } else {
        launch_pdl(matvec_q8_v5s_kernel<T, R, 3, WPB>, grid, block, 0, stream, m, a);
    }
}

template <int T>
bool launch_v5_type(MvArgs m, int64_t n_cols, const Q8Act &a, cudaStream_t stream) {
    uintptr_t align = uintptr_t(m.w0) | uintptr_t(m.row_bytes);
    if (m.nm == 2) align |= uintptr_t(m.w1);
    if (m.n2) align |= uintptr_t(m.w2);
    if (m.n3) align |= uintptr_t(m.w3);
    if (align % 16) return false;
    m.nb = int(n_cols / QTraits<T>::BS);
    const int64_t rows = m.n_rows + m.n2 + m.n3;
    const int opt = options().matvec_rows;
    const int r = m.nm == 2 ? 2 : opt == 1 ? 1 : (opt == 4 && V5<T>::regs) ? 4 : 2;
    const int64_t warps = m.nm == 2 ? rows : (rows + r - 1) / r;
    if (r == 1) launch_v5_shape<T, 1, 4, false>(m, warps, a, stream);
    else if (r == 4) launch_v5_shape<T, V5<T>::regs ? 4 : 2, 4, false>(m, warps, a, stream);
    else if (opt == 8) launch_v5_shape<T, 2, 1, false>(m, warps, a, stream);
    else if (opt == 2 && V5<T>::regs) launch_v5_shape<T, 2, 4, true>(m, warps, a, stream);
    else launch_v5_shape<T, 2, 4, false>(m, warps, a, stream);
    return true;
}

// Four stages of 4 warps fit the 48 KB of static shared memory for most types (not Q6_K, Q5_1).
template <int T>
constexpr bool fits_four_stages() {
    return kWarps * 4 * (Tile<T>::NB * QTraits<T>::TS + 16) <= 48 * 1024;
}

template <int T>
void launch_v4_type(MvArgs m, int64_t n_cols, const Q8Act &a, cudaStream_t stream) {
    m.nb = int(n_cols / QTraits<T>::BS);
    uintptr_t align = uintptr_t(m.w0) | uintptr_t(m.row_bytes);
    if (m.nm == 2) align |= uintptr_t(m.w1);
    if (m.n2) align |= uintptr_t(m.w2);
    if (m.n3) align |= uintptr_t(m.w3);
    if (align % 16 == 0) {
        // stages: 3 by default; "matvec_rows" 4 selects 4 (a benchmark variant; 1: see launch_v4)
        if constexpr (fits_four_stages<T>()) {
            if (options().matvec_rows == 4) {
                launch_v4<T, 16, 4>(m, a, stream);
                return;
            }
        }
        launch_v4<T, 16, 3>(m, a, stream);
    } else if (align % 8 == 0) launch_v4<T, 8, 3>(m, a, stream);
    else if (align % 4 == 0) launch_v4<T, 4, 3>(m, a, stream);
    else launch_v4<T, 2, 3>(m, a, stream);
}

// The option's kernel: v5 where it has the type and alignment, else v4.
template <int T>
void launch_v45(const MvArgs &m, int64_t n_cols, const Q8Act &a, cudaStream_t stream) {
    if (options().matvec_q8_kernel == 5 && launch_v5_type<T>(m, n_cols, a, stream)) return;
    launch_v4_type<T>(m, n_cols, a, stream);
}

template <class F>
bool dispatch_q8_type(uint32_t type, F &&f) {
    switch (type) {
        case TACTIC_TYPE_Q4_0: f(std::integral_constant<int, TACTIC_TYPE_Q4_0>{}); return true;
        case TACTIC_TYPE_Q4_1: f(std::integral_constant<int, TACTIC_TYPE_Q4_1>{}); return true;
        case TACTIC_TYPE_Q5_0: f(std::integral_constant<int, TACTIC_TYPE_Q5_0>{}); return true;
        case TACTIC_TYPE_Q5_1: f(std::integral_constant<int, TACTIC_TYPE_Q5_1>{}); return true;
        case TACTIC_TYPE_Q8_0: f(std::integral_constant<int, TACTIC_TYPE_Q8_0>{}); return true;
        case TACTIC_TYPE_Q4_K: f(std::integral_constant<int, TACTIC_TYPE_Q4_K>{}); return true;
        case TACTIC_TYPE_Q5_K: f(std::integral_constant<int, TACTIC_TYPE_Q5_K>{}); return true;
        case TACTIC_TYPE_Q6_K: f(std::integral_constant<int, TACTIC_TYPE_Q6_K>{}); return true;
        default: return false;
    }
}

template <int T, int ST>
void launch_q8_st(const uint8_t *W, size_t row_bytes, int64_t n_rows, int nb, const Q8Act &a, float *y,
                  cudaStream_t stream) {
    const unsigned blocks = unsigned((n_rows + kWarps - 1) / kWarps);
    const uintptr_t align = uintptr_t(W) | uintptr_t(row_bytes);
    if (align % 16 == 0) launch_pdl(matvec_q8_kernel<T, 16, ST>, dim3(blocks), dim3(kWarps * 32), 0, stream, W, row_bytes, n_rows, nb, a, y);
    else if (align % 8 == 0) launch_pdl(matvec_q8_kernel<T, 8, ST>, dim3(blocks), dim3(kWarps * 32), 0, stream, W, row_bytes, n_rows, nb, a, y);
    else if (align % 4 == 0) launch_pdl(matvec_q8_kernel<T, 4, ST>, dim3(blocks), dim3(kWarps * 32), 0, stream, W, row_bytes, n_rows, nb, a, y);
    else launch_pdl(matvec_q8_kernel<T, 2, ST>, dim3(blocks), dim3(kWarps * 32), 0, stream, W, row_bytes, n_rows, nb, a, y);
}

template <int T>
void launch_q8(const uint8_t *W, size_t row_bytes, int64_t n_rows, int64_t n_cols, const Q8Act &a, float *y,
               cudaStream_t stream) {
    const int nb = int(n_cols / QTraits<T>::BS);
    // stages: 3 by default; "matvec_rows" 2 selects 2 (a benchmark variant)
    if (options().matvec_rows == 2) launch_q8_st<T, 2>(W, row_bytes, n_rows, nb, a, y, stream);
    else launch_q8_st<T, 3>(W, row_bytes, n_rows, nb, a, y, stream);
}

}  // namespace

bool matvec_q8_kind(uint32_t type, int64_t n_cols, Q8Kind &kind) {
    switch (type) {
        case TACTIC_TYPE_Q4_K: case TACTIC_TYPE_Q5_K: case TACTIC_TYPE_Q6_K:
            kind = Q8Kind::K;
            return n_cols % 256 == 0;
        case TACTIC_TYPE_Q4_0: case TACTIC_TYPE_Q5_0: case TACTIC_TYPE_Q8_0:
            kind = Q8Kind::B0;
            return n_cols % 32 == 0;
        case TACTIC_TYPE_Q4_1: case TACTIC_TYPE_Q5_1:
            kind = Q8Kind::B1;
            return n_cols % 32 == 0;
        default: return false;
    }
}

void quantize_q8_dev(Q8Kind kind, const float *x, int64_t n, const Q8Act &a, cudaStream_t stream) {
    const int64_t groups = n / (kind == Q8Kind::K ? 256 : 32);
    if (groups == 0) return;
    const unsigned blocks = unsigned((groups + 7) / 8);
    if (kind == Q8Kind::K) launch_pdl(quantize_q8k_kernel, dim3(blocks), dim3(256), 0, stream, x, int(groups), a, nullptr);
    else launch_pdl(quantize_q8b_kernel, dim3(blocks), dim3(256), 0, stream, x, int(groups), kind == Q8Kind::B1, a, nullptr);
}

void quantize_q8_to_f16_dev(Q8Kind kind, const float *x, int64_t n, __half *y, cudaStream_t stream) {
    const int64_t groups = n / (kind == Q8Kind::K ? 256 : 32);
    if (groups == 0) return;
    const unsigned blocks = unsigned((groups + 7) / 8);
    if (kind == Q8Kind::K) quantize_q8k_kernel<<<blocks, 256, 0, stream>>>(x, int(groups), Q8Act{}, y);
    else quantize_q8b_kernel<<<blocks, 256, 0, stream>>>(x, int(groups), kind == Q8Kind::B1, Q8Act{}, y);
}

void matvec_q8_dev(uint32_t type, const void *w, size_t row_bytes, int64_t n_rows, int64_t n_cols, const Q8Act &a,
                   float *y, cudaStream_t stream) {
    if (n_rows == 0) return;
    const uint8_t *W = static_cast<const uint8_t *>(w);
    if (options().matvec_q8_kernel >= 4) {
        matvec_q8_fused_dev(type, w, nullptr, row_bytes, n_rows, n_cols, a, MvEpilogue::Plain, nullptr, y, stream);
        return;
    }
    const bool ok = dispatch_q8_type(type, [&](auto tag) {
        launch_q8<decltype(tag)::value>(W, row_bytes, n_rows, n_cols, a, y, stream);
    });
    TACTIC_CHECK(ok, TACTIC_ERR_INTERNAL, "matvec_q8: unsupported type");
}

void matvec_q8_fused_dev(uint32_t type, const void *w0, const void *w1, size_t row_bytes, int64_t n_rows,
                         int64_t n_cols, const Q8Act &a, MvEpilogue epi, const float *res, float *y,
                         cudaStream_t stream) {
    if (n_rows == 0) return;
    MvArgs m;
    m.w0 = static_cast<const uint8_t *>(w0);
    m.w1 = static_cast<const uint8_t *>(w1);
    m.nm = (epi == MvEpilogue::Silu || epi == MvEpilogue::Gelu) ? 2 : 1;
    TACTIC_CHECK(m.nm == 1 || w1, TACTIC_ERR_INTERNAL, "matvec_q8: a gated epilogue needs two matrices");
    TACTIC_CHECK(epi != MvEpilogue::Residual || res, TACTIC_ERR_INTERNAL, "matvec_q8: residual missing");
    m.row_bytes = row_bytes;
    m.n_rows = n_rows;
    m.epi = epi;
    m.res = res;
    m.y = y;
    const bool ok = dispatch_q8_type(type, [&](auto tag) { launch_v45<decltype(tag)::value>(m, n_cols, a, stream); });
    TACTIC_CHECK(ok, TACTIC_ERR_INTERNAL, "matvec_q8: unsupported type");
}

void matvec_q8_multi_dev(uint32_t type, int count, const void *const *w, const int64_t *n_rows, float *const *y,
                         size_t row_bytes, int64_t n_cols, const Q8Act &a, cudaStream_t stream) {
    TACTIC_CHECK(count >= 1 && count <= 3, TACTIC_ERR_INTERNAL, "matvec_q8: 1 to 3 matrices in one launch");
    MvArgs m;
    m.w0 = static_cast<const uint8_t *>(w[0]);
    m.n_rows = n_rows[0];
    m.y = y[0];
    if (count > 1) m.w2 = static_cast<const uint8_t *>(w[1]), m.n2 = n_rows[1], m.y2 = y[1];
    if (count > 2) m.w3 = static_cast<const uint8_t *>(w[2]), m.n3 = n_rows[2], m.y3 = y[2];
    m.row_bytes = row_bytes;
    if (m.n_rows + m.n2 + m.n3 == 0) return;
    const bool ok = dispatch_q8_type(type, [&](auto tag) { launch_v45<decltype(tag)::value>(m, n_cols, a, stream); });
    TACTIC_CHECK(ok, TACTIC_ERR_INTERNAL, "matvec_q8: unsupported type");
}

void matvec_q8_prepare() {
    for (uint32_t type : {TACTIC_TYPE_Q4_0, TACTIC_TYPE_Q4_1, TACTIC_TYPE_Q5_0, TACTIC_TYPE_Q5_1, TACTIC_TYPE_Q8_0,
                          TACTIC_TYPE_Q4_K, TACTIC_TYPE_Q5_K, TACTIC_TYPE_Q6_K})
        dispatch_q8_type(type, [](auto tag) {
            constexpr int T = decltype(tag)::value;
            v4_blocks_per_sm<T, 16, 3>();
            if constexpr (fits_four_stages<T>()) v4_blocks_per_sm<T, 16, 4>();
            v4_blocks_per_sm<T, 8, 3>();
            v4_blocks_per_sm<T, 4, 3>();
            v4_blocks_per_sm<T, 2, 3>();
        });
    sm_count();
}

void rms_norm_q8_dev(Q8Kind kind, const float *x, const float *w, int n, float eps, float *y, const Q8Act &a,
                     cudaStream_t stream) {
    launch_pdl(rms_norm_q8_kernel, dim3(1), dim3(kNormQThreads), 0, stream, x, w, n, eps, int(kind), y, a);
}

void add_norm_rms_norm_q8_dev(Q8Kind kind, float *t, const float *wt, float eps_t, float *x, const float *w, int n,
                              float eps, float *y, const Q8Act &a, cudaStream_t stream) {
    launch_pdl(add_norm_rms_norm_q8_kernel, dim3(1), dim3(kNormQThreads), 0, stream, t, wt, eps_t, x, w, n, eps,
               int(kind), y, a);
}

// ---- test hooks (cuda_backend.h): host buffers in and out ----------------------------

namespace {
struct DevQ8 {
    DevBuf q, d, s;
    explicit DevQ8(int64_t n)
        : q(size_t(n)), d(sizeof(float) * size_t(n / 32 + 1)), s(sizeof(float) * size_t(n / 16 + 1)) {}
    Q8Act act() const {
        Q8Act a;
        a.q = q.as<int8_t>(), a.d = d.as<float>(), a.s = s.as<float>();
        return a;
    }
};
}  // namespace

void matvec_q8_epilogue(uint32_t type, const void *w0, const void *w1, size_t row_bytes, int64_t n_rows,
                        int64_t n_cols, const float *x, int epi, float *y) {
    require_device();
    Q8Kind kind;
    TACTIC_CHECK(matvec_q8_kind(type, n_cols, kind), TACTIC_ERR_UNSUPPORTED, "matvec_q8: unsupported type or width");
    TACTIC_CHECK(epi >= 0 && epi <= 3, TACTIC_ERR_INVALID_ARGUMENT, "matvec_q8: epilogue must be 0..3");
    const bool two = epi >= 2;
    TACTIC_CHECK(!two || w1, TACTIC_ERR_INVALID_ARGUMENT, "matvec_q8: a gated epilogue needs w1");
    const size_t w_bytes = row_bytes * size_t(n_rows);
    // timed (bench_iters): copies of the weights rotated so that repeats stream from memory
    const int copies = bench_copies(two ? 2 * w_bytes : w_bytes);
    std::vector<DevBuf> d_w0, d_w1;
    for (int i = 0; i < copies; i++) {
        d_w0.emplace_back(w_bytes);
        d_w0.back().upload(w0, w_bytes);
        d_w1.emplace_back(two ? w_bytes : 0);
        if (two) d_w1.back().upload(w1, w_bytes);
    }
    DevBuf d_x(sizeof(float) * size_t(n_cols)), d_y(sizeof(float) * size_t(n_rows));
    d_x.upload(x, d_x.size());
    if (epi == 1) d_y.upload(y, d_y.size());
    else d_y.poison();
    DevQ8 q(n_cols);
    quantize_q8_dev(kind, d_x.as<float>(), n_cols, q.act(), 0);
    auto launch_on = [&](int c, cudaStream_t s) {
        matvec_q8_fused_dev(type, d_w0[c].as<uint8_t>(), two ? d_w1[c].as<uint8_t>() : nullptr, row_bytes, n_rows,
                            n_cols, q.act(), MvEpilogue(epi), epi == 1 ? d_y.as<float>() : nullptr, d_y.as<float>(), s);
    };
    auto launch = [&](int c) { launch_on(c, 0); };
    launch(0);
    check_launch("matvec_q8_v4/v5_kernel");
    d_y.download(y, d_y.size());
    // (a timed residual epilogue keeps adding into y: only its time is kept)
    if (options().bench_graph) bench_in_graph(launch_on, copies, 8);
    else bench(launch, copies);
}

void rms_norm_q8(uint32_t type, const float *x, const float *w, int n, float eps, float *y, float *xq) {
    require_device();
    Q8Kind kind;
    TACTIC_CHECK(matvec_q8_kind(type, n, kind), TACTIC_ERR_UNSUPPORTED, "rms_norm_q8: unsupported type or width");
    DevBuf d_x(sizeof(float) * size_t(n)), d_w(w ? sizeof(float) * size_t(n) : 0), d_y(sizeof(float) * size_t(n));
    d_x.upload(x, d_x.size());
    if (w) d_w.upload(w, d_w.size());
    d_y.poison();
    DevQ8 q(n);
    rms_norm_q8_dev(kind, d_x.as<float>(), w ? d_w.as<float>() : nullptr, n, eps, d_y.as<float>(), q.act(), 0);
    check_launch("rms_norm_q8_kernel");
    d_y.download(y, d_y.size());
    // d * q per element (Q8_K: d per 256; Q8_0 / Q8_1: d per 32)
    std::vector<int8_t> hq(static_cast<size_t>(n));
    std::vector<float> hd(static_cast<size_t>(n / 32 + 1));
    q.q.download(hq.data(), hq.size());
    q.d.download(hd.data(), sizeof(float) * hd.size());
    const int bs = kind == Q8Kind::K ? 256 : 32;
    for (int i = 0; i < n; i++) xq[i] = hd[size_t(i / bs)] * float(hq[size_t(i)]);
}

}  // namespace cuda
}  // namespace tactic
