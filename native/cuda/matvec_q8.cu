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
#include "cuda_backend.h"
#include "cuda_ops.cuh"
#include "cuda_util.cuh"
#include "quant_blocks.cuh"

namespace tactic {
namespace cuda {

namespace {

constexpr int kWarps = 4;  // warps (rows) per block

// ---- activation quantizers (the CPU's bytes; see quant/quantize.cpp) ----------------

// Q8_K, a warp per 256 values: scale from the signed extreme (the first one of the
// largest magnitude, as the CPU's loop finds it), d = 1 / (-127 / max), q in
// [-128, 127], sums of each 16 (bsums) kept as floats.
// With f16 set, the dequantized values d * q are written there instead (prefill: the
// GEMM's f16 input then carries the CPU's activation rounding).
__global__ void quantize_q8k_kernel(const float *__restrict__ x, int n_groups, Q8Act a, __half *__restrict__ f16) {
    const int g = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (g >= n_groups) return;
    const float4 *xp = reinterpret_cast<const float4 *>(x + int64_t(g) * 256 + 8 * lane);
    const float4 u = xp[0], w = xp[1];
    const float v[8] = {u.x, u.y, u.z, u.w, w.x, w.y, w.z, w.w};
    float best = 0.f;
    int bi = 1 << 30;
#pragma unroll
    for (int i = 0; i < 8; i++)
        if (fabsf(v[i]) > best) best = fabsf(v[i]), bi = 8 * lane + i;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ob = __shfl_xor_sync(0xffffffffu, best, o);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ob > best || (ob == best && oi < bi)) best = ob, bi = oi;
    }
    if (f16) {
        const float mx = x[int64_t(g) * 256 + bi], iscale = -127.f / mx, d = 1.f / iscale;
#pragma unroll
        for (int i = 0; i < 8; i++)
            f16[int64_t(g) * 256 + 8 * lane + i] =
                __float2half_rn(best > 0.f ? d * float(max(-128, min(127, __float2int_rn(iscale * v[i])))) : 0.f);
        return;
    }
    int8_t *q = a.q + int64_t(g) * 256 + 8 * lane;
    if (!(best > 0.f)) {  // zero (or NaN) block: all zero, as the CPU writes it
        *reinterpret_cast<uint2 *>(q) = make_uint2(0, 0);
        if (lane % 2 == 0) a.s[int64_t(g) * 16 + lane / 2] = 0.f;
        if (lane == 0) a.d[g] = 0.f;
        return;
    }
    const float mx = x[int64_t(g) * 256 + bi];
    const float iscale = -127.f / mx;
    int sum = 0;
    uint32_t packed[2] = {0, 0};
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int qi = max(-128, min(127, __float2int_rn(iscale * v[i])));
        sum += qi;
        packed[i / 4] |= uint32_t(qi & 255) << (8 * (i % 4));
    }
    *reinterpret_cast<uint2 *>(q) = make_uint2(packed[0], packed[1]);
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    if (lane % 2 == 0) a.s[int64_t(g) * 16 + lane / 2] = float(sum);
    if (lane == 0) a.d[g] = 1.f / iscale;
}

// Q8_0 / Q8_1, a warp per 32 values: d = amax / 127 stored as f16, q in [-127, 127];
// s = the sum of q (Q8_0, for Q4_0/Q5_0's offsets) or f16(d * sum q) (Q8_1's s).
__global__ void quantize_q8b_kernel(const float *__restrict__ x, int n_groups, bool q8_1, Q8Act a,
                                    __half *__restrict__ f16) {
    const int g = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (g >= n_groups) return;
    const float v = x[int64_t(g) * 32 + lane];
    const float amax = warp_max(fabsf(v));
    const float d = amax / 127.f, id = amax != 0.f ? 127.f / amax : 0.f;
    const int qi = max(-127, min(127, __float2int_rn(v * id)));
    if (f16) {
        f16[int64_t(g) * 32 + lane] = __float2half_rn(__half2float(__float2half_rn(d)) * float(qi));
        return;
    }
    a.q[int64_t(g) * 32 + lane] = int8_t(qi);
    int sum = qi;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) {
        a.d[g] = __half2float(__float2half_rn(d));
        a.s[g] = q8_1 ? __half2float(__float2half_rn(float(sum) * d)) : float(sum);
    }
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

// Lane's share of block gb (at byte `off` of the tile s) against the activations.
template <int T>
__device__ __forceinline__ float block_dot(const uint8_t *s, int off, int part, int64_t gb, const Q8Act &a) {
    if constexpr (T == TACTIC_TYPE_Q8_0) {
        uint32_t w[8];
        lds_words<8>(s, off + 2, w);
        const int8_t *xb = a.q + gb * 32;
        const int dot = dp4a4(w + 4, ldx(xb + 16), dp4a4(w, ldx(xb), 0));
        return lds_f16(s, off) * a.d[gb] * float(dot);
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
        const int8_t *xb = a.q + gb * 32;
        const int dot = dp4a4(hi, ldx(xb + 16), dp4a4(lo, ldx(xb), 0));
        const float d = lds_f16(s, off) * a.d[gb];
        if constexpr (has_min) return fmaf(d, float(dot), lds_f16(s, off + 2) * a.s[gb]);
        else return d * (float(dot) - (five ? 16.f : 8.f) * a.s[gb]);
    } else if constexpr (T == TACTIC_TYPE_Q4_K || T == TACTIC_TYPE_Q5_K) {
        // part c: qs bytes 16c .. 16c+15 = elements 64j + 16h + t (low nibbles, sub-block
        // 2j) and 64j + 32 + 16h + t (high nibbles, sub-block 2j+1), j = c/2, h = c%2.
        constexpr bool five = T == TACTIC_TYPE_Q5_K;
        const int j = part >> 1, h = part & 1;
        const uint4 hdr = *reinterpret_cast<const uint4 *>(s + off);
        const uint4 qv = *reinterpret_cast<const uint4 *>(s + off + (five ? 48 : 16) + 16 * part);
        uint32_t lo[4] = {qv.x, qv.y, qv.z, qv.w}, hi[4];
        uint32_t qh[4] = {0, 0, 0, 0};
        if constexpr (five) {  // bit 2j / 2j+1 of qh[16h + t]
            const uint4 hv = *reinterpret_cast<const uint4 *>(s + off + 16 + 16 * h);
            qh[0] = hv.x, qh[1] = hv.y, qh[2] = hv.z, qh[3] = hv.w;
        }
#pragma unroll
        for (int i = 0; i < 4; i++) {
            hi[i] = (lo[i] >> 4) & 0x0f0f0f0fu;
            lo[i] &= 0x0f0f0f0fu;
            if constexpr (five) {
                lo[i] |= ((qh[i] >> (2 * j)) & 0x01010101u) << 4;
                hi[i] |= ((qh[i] >> (2 * j + 1)) & 0x01010101u) << 4;
            }
        }
        const int8_t *xb = a.q + gb * 256 + 64 * j + 16 * h;
        const int dot_a = dp4a4(lo, ldx(xb), 0), dot_h = dp4a4(hi, ldx(xb + 32), 0);
        // the 6-bit scales / mins of sub-blocks 2j, 2j+1 (bytes 2j%4, 2j%4+1 of these words)
        const uint32_t scw = j < 2 ? hdr.y & 0x3f3f3f3fu
                                   : (hdr.w & 0x0f0f0f0fu) | (((hdr.y >> 6) & 0x03030303u) << 4);
        const uint32_t mnw = j < 2 ? hdr.z & 0x3f3f3f3fu
                                   : ((hdr.w >> 4) & 0x0f0f0f0fu) | (((hdr.z >> 6) & 0x03030303u) << 4);
        const int sh = 16 * (j & 1);
        const float sc_a = float((scw >> sh) & 255u), sc_h = float((scw >> (sh + 8)) & 255u);
        const float m_a = float((mnw >> sh) & 255u), m_h = float((mnw >> (sh + 8)) & 255u);
        const float *bs = a.s + gb * 16 + 4 * j + h;
        // Integers up to 63 * 30720 and 63 * 4096: exact in f32.
        const float isum = sc_a * float(dot_a) + sc_h * float(dot_h);
        const float imin = m_a * bs[0] + m_h * bs[2];
        return a.d[gb] * (h2f(hdr.x & 0xffffu) * isum - h2f(hdr.x >> 16) * imin);
    } else {  // Q6_K
        // part = 2hh + p: elements 128hh + 32k + 16p + t (t < 16) for k = 0..3; ql bytes
        // 64hh + 16p + t (k = 0, 2) and 64hh + 32 + 16p + t (k = 1, 3), qh 32hh + 16p + t.
        const int hh = part >> 1, p = part & 1;
        uint32_t A[4], B[4], H[4], S[2];
        lds_words<4>(s, off + 64 * hh + 16 * p, A);
        lds_words<4>(s, off + 64 * hh + 32 + 16 * p, B);
        lds_words<4>(s, off + 128 + 32 * hh + 16 * p, H);
        lds_words<2>(s, off + 192 + 8 * hh, S);
        const int8_t *xb = a.q + gb * 256 + 128 * hh + 16 * p;
        const float *bs = a.s + gb * 16 + 8 * hh + p;
        int isum = 0;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            uint32_t q6[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const uint32_t src = (k & 1) ? B[i] : A[i];
                q6[i] = ((k < 2 ? src : src >> 4) & 0x0f0f0f0fu) | (((H[i] >> (2 * k)) & 0x03030303u) << 4);
            }
            const int dot = dp4a4(q6, ldx(xb + 32 * k), 0) - 32 * int(bs[2 * k]);
            const int sb = p + 2 * k;  // scale byte of this 16-element run
            const int sc = int(int8_t((S[sb >> 2] >> (8 * (sb & 3))) & 255u));
            isum += sc * dot;
        }
        return lds_f16(s, off + 208) * a.d[gb] * float(isum);
    }
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
    if (row >= n_rows) return;  // a whole warp: no block-wide barrier below
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

template <int T, int ST>
void launch_q8_st(const uint8_t *W, size_t row_bytes, int64_t n_rows, int nb, const Q8Act &a, float *y,
                  cudaStream_t stream) {
    const unsigned blocks = unsigned((n_rows + kWarps - 1) / kWarps);
    const uintptr_t align = uintptr_t(W) | uintptr_t(row_bytes);
    if (align % 16 == 0) matvec_q8_kernel<T, 16, ST><<<blocks, kWarps * 32, 0, stream>>>(W, row_bytes, n_rows, nb, a, y);
    else if (align % 8 == 0) matvec_q8_kernel<T, 8, ST><<<blocks, kWarps * 32, 0, stream>>>(W, row_bytes, n_rows, nb, a, y);
    else if (align % 4 == 0) matvec_q8_kernel<T, 4, ST><<<blocks, kWarps * 32, 0, stream>>>(W, row_bytes, n_rows, nb, a, y);
    else matvec_q8_kernel<T, 2, ST><<<blocks, kWarps * 32, 0, stream>>>(W, row_bytes, n_rows, nb, a, y);
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
    if (kind == Q8Kind::K) quantize_q8k_kernel<<<blocks, 256, 0, stream>>>(x, int(groups), a, nullptr);
    else quantize_q8b_kernel<<<blocks, 256, 0, stream>>>(x, int(groups), kind == Q8Kind::B1, a, nullptr);
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
    switch (type) {
        case TACTIC_TYPE_Q4_0: launch_q8<TACTIC_TYPE_Q4_0>(W, row_bytes, n_rows, n_cols, a, y, stream); return;
        case TACTIC_TYPE_Q4_1: launch_q8<TACTIC_TYPE_Q4_1>(W, row_bytes, n_rows, n_cols, a, y, stream); return;
        case TACTIC_TYPE_Q5_0: launch_q8<TACTIC_TYPE_Q5_0>(W, row_bytes, n_rows, n_cols, a, y, stream); return;
        case TACTIC_TYPE_Q5_1: launch_q8<TACTIC_TYPE_Q5_1>(W, row_bytes, n_rows, n_cols, a, y, stream); return;
        case TACTIC_TYPE_Q8_0: launch_q8<TACTIC_TYPE_Q8_0>(W, row_bytes, n_rows, n_cols, a, y, stream); return;
        case TACTIC_TYPE_Q4_K: launch_q8<TACTIC_TYPE_Q4_K>(W, row_bytes, n_rows, n_cols, a, y, stream); return;
        case TACTIC_TYPE_Q5_K: launch_q8<TACTIC_TYPE_Q5_K>(W, row_bytes, n_rows, n_cols, a, y, stream); return;
        case TACTIC_TYPE_Q6_K: launch_q8<TACTIC_TYPE_Q6_K>(W, row_bytes, n_rows, n_cols, a, y, stream); return;
        default: TACTIC_CHECK(false, TACTIC_ERR_INTERNAL, "matvec_q8: unsupported type");
    }
}

}  // namespace cuda
}  // namespace tactic
