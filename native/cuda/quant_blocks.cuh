// Device-side decoding of the ggml block formats (FORMATS.md §2), shared by the
// dequantize and matvec kernels so both compute the same values.
//
// A row is cut into chunks: the unit one thread decodes at a time (a whole block for
// the 32-element formats, a 64-element half-pair for Q4_K/Q5_K, 32 elements for Q6_K,
// 8 elements for float rows). decode<T>() turns one chunk into CE floats, and
// xoff<T>() says which element of the block each of them is.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "tactic.h"

namespace tactic {
namespace cuda {

// Float rows whose length is not a multiple of 8 take one element per chunk.
enum : int { T_F32_1 = 100, T_F16_1 = 101, T_BF16_1 = 130 };

template <int T> struct QTraits;
#define TACTIC_QTRAITS(T_, BS_, TS_, CE_)                                                             \
    template <> struct QTraits<T_> {                                                                   \
        static constexpr int BS = BS_, TS = TS_, CE = CE_, CPB = BS_ / CE_;                            \
    }
TACTIC_QTRAITS(TACTIC_TYPE_F32, 8, 32, 8);
TACTIC_QTRAITS(TACTIC_TYPE_F16, 8, 16, 8);
TACTIC_QTRAITS(TACTIC_TYPE_BF16, 8, 16, 8);
TACTIC_QTRAITS(T_F32_1, 1, 4, 1);
TACTIC_QTRAITS(T_F16_1, 1, 2, 1);
TACTIC_QTRAITS(T_BF16_1, 1, 2, 1);
TACTIC_QTRAITS(TACTIC_TYPE_Q4_0, 32, 18, 32);
TACTIC_QTRAITS(TACTIC_TYPE_Q4_1, 32, 20, 32);
TACTIC_QTRAITS(TACTIC_TYPE_Q5_0, 32, 22, 32);
TACTIC_QTRAITS(TACTIC_TYPE_Q5_1, 32, 24, 32);
TACTIC_QTRAITS(TACTIC_TYPE_Q8_0, 32, 34, 32);
TACTIC_QTRAITS(TACTIC_TYPE_Q4_K, 256, 144, 64);
TACTIC_QTRAITS(TACTIC_TYPE_Q5_K, 256, 176, 64);
TACTIC_QTRAITS(TACTIC_TYPE_Q6_K, 256, 210, 32);
#undef TACTIC_QTRAITS

// ---- loads at the alignment each format guarantees ------------------------------
__device__ __forceinline__ uint32_t ld16(const uint8_t *p) { return *reinterpret_cast<const uint16_t *>(p); }
// A 32-bit word from a 2-byte aligned address (the 18/22/34/210-byte blocks).
__device__ __forceinline__ uint32_t ld32a2(const uint8_t *p) { return ld16(p) | (ld16(p + 2) << 16); }
__device__ __forceinline__ uint32_t ld32(const uint8_t *p) { return *reinterpret_cast<const uint32_t *>(p); }
__device__ __forceinline__ uint4 ld128(const uint8_t *p) { return *reinterpret_cast<const uint4 *>(p); }
__device__ __forceinline__ float h2f(uint32_t bits) { return __half2float(__ushort_as_half(uint16_t(bits))); }

// Byte k of w minus `off`, as a float, without the slow int-to-float conversion:
// 0x4B0000bb is the float 2^23 + bb, exactly.
__device__ __forceinline__ float bytef(uint32_t w, int k, float off) {
    return __uint_as_float(__byte_perm(w, 0x4B000000u, 0x7540u | unsigned(k))) - (8388608.0f + off);
}
// Spreads the 4 low bits of b to bit 0 of each byte.
__device__ __forceinline__ uint32_t spread4(uint32_t b) { return ((b & 15u) * 0x00204081u) & 0x01010101u; }

// K-quant 6-bit scale and min of sub-block j (FORMATS.md §2.2) from the 12 bytes s0..s2.
__device__ __forceinline__ uint32_t kbyte(uint32_t s0, uint32_t s1, uint32_t s2, int j) {
    const uint32_t w = j < 4 ? s0 : (j < 8 ? s1 : s2);
    return (w >> (8 * (j & 3))) & 255u;
}
__device__ __forceinline__ void kscale_min(uint32_t s0, uint32_t s1, uint32_t s2, int j, float &sc, float &mn) {
    if (j < 4) {
        sc = float(kbyte(s0, s1, s2, j) & 63u);
        mn = float(kbyte(s0, s1, s2, j + 4) & 63u);
    } else {
        sc = float((kbyte(s0, s1, s2, j + 4) & 15u) | ((kbyte(s0, s1, s2, j - 4) >> 6) << 4));
        mn = float((kbyte(s0, s1, s2, j + 4) >> 4) | ((kbyte(s0, s1, s2, j) >> 6) << 4));
    }
}

// Element of the block that chunk `sub`'s i-th value is.
template <int T>
__device__ __forceinline__ int xoff(int sub, int i) {
    if constexpr (T == TACTIC_TYPE_Q6_K) {
        // chunk sub = 4h + q holds e = 128h + 32k + 8q + l' for k = 0..3, l' = 0..7
        return 128 * (sub >> 2) + 32 * (i >> 3) + 8 * (sub & 3) + (i & 7);
    } else {
        return sub * QTraits<T>::CE + i;
    }
}

// The CE values of chunk `sub` of the block at b.
template <int T>
__device__ __forceinline__ void decode(const uint8_t *__restrict__ b, int sub, float *v) {
    if constexpr (T == TACTIC_TYPE_F32) {
        const float4 a = *reinterpret_cast<const float4 *>(b), c = *reinterpret_cast<const float4 *>(b + 16);
        v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = c.x, v[5] = c.y, v[6] = c.z, v[7] = c.w;
    } else if constexpr (T == TACTIC_TYPE_F16 || T == TACTIC_TYPE_BF16) {
        const uint4 w = ld128(b);
        const uint32_t ws[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            if constexpr (T == TACTIC_TYPE_F16) {
                v[2 * i] = h2f(ws[i] & 0xffffu);
                v[2 * i + 1] = h2f(ws[i] >> 16);
            } else {
                v[2 * i] = __uint_as_float(ws[i] << 16);
                v[2 * i + 1] = __uint_as_float(ws[i] & 0xffff0000u);
            }
        }
    } else if constexpr (T == T_F32_1) {
        v[0] = *reinterpret_cast<const float *>(b);
    } else if constexpr (T == T_F16_1) {
        v[0] = h2f(ld16(b));
    } else if constexpr (T == T_BF16_1) {
        v[0] = __uint_as_float(ld16(b) << 16);
    } else if constexpr (T == TACTIC_TYPE_Q4_0 || T == TACTIC_TYPE_Q5_0) {
        const float d = h2f(ld16(b));
        const uint32_t qh = T == TACTIC_TYPE_Q5_0 ? ld32a2(b + 2) : 0u;
        const uint8_t *qs = b + (T == TACTIC_TYPE_Q5_0 ? 6 : 2);
        const float off = T == TACTIC_TYPE_Q5_0 ? 16.f : 8.f;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const uint32_t w = ld32a2(qs + 4 * i);
            uint32_t lo = w & 0x0f0f0f0fu, hi = (w >> 4) & 0x0f0f0f0fu;
            if constexpr (T == TACTIC_TYPE_Q5_0) {
                lo |= spread4(qh >> (4 * i)) << 4;
                hi |= spread4(qh >> (16 + 4 * i)) << 4;
            }
#pragma unroll
            for (int k = 0; k < 4; k++) {
                v[4 * i + k] = d * bytef(lo, k, off);
                v[16 + 4 * i + k] = d * bytef(hi, k, off);
            }
        }
    } else if constexpr (T == TACTIC_TYPE_Q4_1 || T == TACTIC_TYPE_Q5_1) {
        const uint32_t dm = ld32(b);
        const float d = h2f(dm & 0xffffu), m = h2f(dm >> 16);
        const uint32_t qh = T == TACTIC_TYPE_Q5_1 ? ld32(b + 4) : 0u;
        const uint8_t *qs = b + (T == TACTIC_TYPE_Q5_1 ? 8 : 4);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const uint32_t w = ld32(qs + 4 * i);
            uint32_t lo = w & 0x0f0f0f0fu, hi = (w >> 4) & 0x0f0f0f0fu;
            if constexpr (T == TACTIC_TYPE_Q5_1) {
                lo |= spread4(qh >> (4 * i)) << 4;
                hi |= spread4(qh >> (16 + 4 * i)) << 4;
            }
#pragma unroll
            for (int k = 0; k < 4; k++) {
                v[4 * i + k] = fmaf(d, bytef(lo, k, 0.f), m);
                v[16 + 4 * i + k] = fmaf(d, bytef(hi, k, 0.f), m);
            }
        }
    } else if constexpr (T == TACTIC_TYPE_Q8_0) {
        const float d = h2f(ld16(b));
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const uint32_t w = ld32a2(b + 2 + 4 * i) ^ 0x80808080u;  // int8 -> uint8 + 128
#pragma unroll
            for (int k = 0; k < 4; k++) v[4 * i + k] = d * bytef(w, k, 128.f);
        }
    } else if constexpr (T == TACTIC_TYPE_Q4_K || T == TACTIC_TYPE_Q5_K) {
        // chunk sub = c: elements 64c .. 64c+63 from qs[32c .. 32c+31]
        const uint32_t dm = ld32(b);
        const float d = h2f(dm & 0xffffu), dmin = h2f(dm >> 16);
        const uint32_t s0 = ld32(b + 4), s1 = ld32(b + 8), s2 = ld32(b + 12);
        float sc0, mn0, sc1, mn1;
        kscale_min(s0, s1, s2, 2 * sub, sc0, mn0);
        kscale_min(s0, s1, s2, 2 * sub + 1, sc1, mn1);
        const float d0 = d * sc0, m0 = dmin * mn0, d1 = d * sc1, m1 = dmin * mn1;
        const uint8_t *qs = b + (T == TACTIC_TYPE_Q5_K ? 48 : 16) + 32 * sub;
        const uint4 qa = ld128(qs), qb = ld128(qs + 16);
        const uint32_t q[8] = {qa.x, qa.y, qa.z, qa.w, qb.x, qb.y, qb.z, qb.w};
        uint32_t h[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        if constexpr (T == TACTIC_TYPE_Q5_K) {
            const uint4 ha = ld128(b + 16), hb = ld128(b + 32);
            h[0] = ha.x, h[1] = ha.y, h[2] = ha.z, h[3] = ha.w, h[4] = hb.x, h[5] = hb.y, h[6] = hb.z, h[7] = hb.w;
        }
#pragma unroll
        for (int i = 0; i < 8; i++) {
            uint32_t lo = q[i] & 0x0f0f0f0fu, hi = (q[i] >> 4) & 0x0f0f0f0fu;
            if constexpr (T == TACTIC_TYPE_Q5_K) {
                lo |= ((h[i] >> (2 * sub)) & 0x01010101u) << 4;
                hi |= ((h[i] >> (2 * sub + 1)) & 0x01010101u) << 4;
            }
#pragma unroll
            for (int k = 0; k < 4; k++) {
                v[4 * i + k] = fmaf(d0, bytef(lo, k, 0.f), -m0);
                v[32 + 4 * i + k] = fmaf(d1, bytef(hi, k, 0.f), -m1);
            }
        }
    } else if constexpr (T == TACTIC_TYPE_Q6_K) {
        // chunk sub = 4h + q: l = 8q .. 8q+7 of each of the four 32-element runs of half h
        const int hh = sub >> 2, qq = sub & 3;
        const float d = h2f(ld16(b + 208));
        const uint8_t *ql = b + 64 * hh + 8 * qq;
        const uint8_t *qh = b + 128 + 32 * hh + 8 * qq;
        const int8_t *sc = reinterpret_cast<const int8_t *>(b + 192 + 8 * hh + (qq >> 1));
        const uint32_t A[2] = {ld32a2(ql), ld32a2(ql + 4)}, B[2] = {ld32a2(ql + 32), ld32a2(ql + 36)};
        const uint32_t H[2] = {ld32a2(qh), ld32a2(qh + 4)};
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const float dk = d * float(sc[2 * k]);
#pragma unroll
            for (int w = 0; w < 2; w++) {
                const uint32_t src = (k & 1) ? B[w] : A[w];
                const uint32_t lo = (k < 2 ? src : src >> 4) & 0x0f0f0f0fu;
                const uint32_t q6 = lo | (((H[w] >> (2 * k)) & 0x03030303u) << 4);
#pragma unroll
                for (int j = 0; j < 4; j++) v[8 * k + 4 * w + j] = dk * bytef(q6, j, 32.f);
            }
        }
    }
}

// x values matching chunk `sub` of a block whose first element is xb[0].
template <int T>
__device__ __forceinline__ void load_x(const float *__restrict__ xb, int sub, float *xr) {
    constexpr int CE = QTraits<T>::CE;
    if constexpr (CE == 1) {
        xr[0] = xb[0];
    } else {
#pragma unroll
        for (int i = 0; i < CE; i += 4) {  // runs of >= 8 at multiples of 8: 16-byte aligned
            const float4 t = *reinterpret_cast<const float4 *>(xb + xoff<T>(sub, i));
            xr[i] = t.x, xr[i + 1] = t.y, xr[i + 2] = t.z, xr[i + 3] = t.w;
        }
    }
}

// Calls f(std::integral_constant<int, T>) for the kernel type of (type, n_per_row);
// returns false for types the kernels do not handle.
template <class F>
bool dispatch_type(uint32_t type, int64_t n_per_row, F &&f) {
    const bool vec = n_per_row % 8 == 0;
    switch (type) {
        case TACTIC_TYPE_F32: vec ? f(std::integral_constant<int, TACTIC_TYPE_F32>()) : f(std::integral_constant<int, T_F32_1>()); return true;
        case TACTIC_TYPE_F16: vec ? f(std::integral_constant<int, TACTIC_TYPE_F16>()) : f(std::integral_constant<int, T_F16_1>()); return true;
        case TACTIC_TYPE_BF16: vec ? f(std::integral_constant<int, TACTIC_TYPE_BF16>()) : f(std::integral_constant<int, T_BF16_1>()); return true;
        case TACTIC_TYPE_Q4_0: f(std::integral_constant<int, TACTIC_TYPE_Q4_0>()); return true;
        case TACTIC_TYPE_Q4_1: f(std::integral_constant<int, TACTIC_TYPE_Q4_1>()); return true;
        case TACTIC_TYPE_Q5_0: f(std::integral_constant<int, TACTIC_TYPE_Q5_0>()); return true;
        case TACTIC_TYPE_Q5_1: f(std::integral_constant<int, TACTIC_TYPE_Q5_1>()); return true;
        case TACTIC_TYPE_Q8_0: f(std::integral_constant<int, TACTIC_TYPE_Q8_0>()); return true;
        case TACTIC_TYPE_Q4_K: f(std::integral_constant<int, TACTIC_TYPE_Q4_K>()); return true;
        case TACTIC_TYPE_Q5_K: f(std::integral_constant<int, TACTIC_TYPE_Q5_K>()); return true;
        case TACTIC_TYPE_Q6_K: f(std::integral_constant<int, TACTIC_TYPE_Q6_K>()); return true;
        default: return false;
    }
}

}  // namespace cuda
}  // namespace tactic
