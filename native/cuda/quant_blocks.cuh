// Device-side decoding of the ggml block formats (FORMATS.md §2), shared by the
// dequantize and matvec kernels so both compute the same values.
//
// A row is cut into chunks: the unit one thread decodes at a time (8 elements of the
// 32-element formats, 16 of Q4_K/Q5_K, 32 of Q6_K, 8 of float rows). Chunks are small
// and neighbouring lanes take neighbouring chunks, so that a warp's reads of the
// weights and of x are coalesced (the first version gave each lane a whole block:
// its x reads touched 32 cache lines per instruction and capped Q4_K at 20% of the
// copy bandwidth). decode<T>() turns one chunk into CE floats, and xoff<T>() says
// which element of the block each of them is.
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
TACTIC_QTRAITS(TACTIC_TYPE_Q4_0, 32, 18, 8);
TACTIC_QTRAITS(TACTIC_TYPE_Q4_1, 32, 20, 8);
TACTIC_QTRAITS(TACTIC_TYPE_Q5_0, 32, 22, 8);
TACTIC_QTRAITS(TACTIC_TYPE_Q5_1, 32, 24, 8);
TACTIC_QTRAITS(TACTIC_TYPE_Q8_0, 32, 34, 8);
TACTIC_QTRAITS(TACTIC_TYPE_Q4_K, 256, 144, 16);
TACTIC_QTRAITS(TACTIC_TYPE_Q5_K, 256, 176, 16);
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
    } else if constexpr (T == TACTIC_TYPE_Q4_0 || T == TACTIC_TYPE_Q4_1 || T == TACTIC_TYPE_Q5_0 ||
                         T == TACTIC_TYPE_Q5_1) {
        // chunk p = byte word p of qs: elements 4p..4p+3 (low nibbles), 16+4p.. (high)
        return (i < 4 ? 0 : 12) + 4 * sub + i;
    } else if constexpr (T == TACTIC_TYPE_Q4_K || T == TACTIC_TYPE_Q5_K) {
        // chunk 4c + p = qs bytes 32c + 8p .. +7: elements 64c + 8p + 0..7 and 64c + 32 + 8p + 0..7
        return 64 * (sub >> 2) + 8 * (sub & 3) + (i < 8 ? i : 24 + i);
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
    } else if constexpr (T == TACTIC_TYPE_Q4_0 || T == TACTIC_TYPE_Q5_0 || T == TACTIC_TYPE_Q4_1 ||
                         T == TACTIC_TYPE_Q5_1) {
        constexpr bool five = T == TACTIC_TYPE_Q5_0 || T == TACTIC_TYPE_Q5_1;
        constexpr bool has_min = T == TACTIC_TYPE_Q4_1 || T == TACTIC_TYPE_Q5_1;
        float d, m = 0.f;
        uint32_t w, qh = 0;
        if constexpr (has_min) {  // 4-byte aligned blocks
            const uint32_t dm = ld32(b);
            d = h2f(dm & 0xffffu);
            m = h2f(dm >> 16);
            if constexpr (five) qh = ld32(b + 4);
            w = ld32(b + (five ? 8 : 4) + 4 * sub);
        } else {  // 2-byte aligned blocks
            d = h2f(ld16(b));
            if constexpr (five) qh = ld32a2(b + 2);
            w = ld32a2(b + (five ? 6 : 2) + 4 * sub);
        }
        uint32_t lo = w & 0x0f0f0f0fu, hi = (w >> 4) & 0x0f0f0f0fu;
        if constexpr (five) {
            lo |= spread4(qh >> (4 * sub)) << 4;
            hi |= spread4(qh >> (16 + 4 * sub)) << 4;
        }
        const float off = has_min ? 0.f : (five ? 16.f : 8.f);
#pragma unroll
        for (int k = 0; k < 4; k++) {
            v[k] = fmaf(d, bytef(lo, k, off), m);
            v[4 + k] = fmaf(d, bytef(hi, k, off), m);
        }
    } else if constexpr (T == TACTIC_TYPE_Q8_0) {
        const float d = h2f(ld16(b));
        const uint32_t w0 = ld32a2(b + 2 + 8 * sub) ^ 0x80808080u;  // int8 -> uint8 + 128
        const uint32_t w1 = ld32a2(b + 6 + 8 * sub) ^ 0x80808080u;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            v[k] = d * bytef(w0, k, 128.f);
            v[4 + k] = d * bytef(w1, k, 128.f);
        }
    } else if constexpr (T == TACTIC_TYPE_Q4_K || T == TACTIC_TYPE_Q5_K) {
        // chunk sub = 4c + p: qs[32c + 8p .. +7], sub-blocks 2c (low nibbles) and 2c+1 (high)
        const int c = sub >> 2, p = sub & 3;
        const uint32_t dm = ld32(b);
        const float d = h2f(dm & 0xffffu), dmin = h2f(dm >> 16);
        const uint32_t s0 = ld32(b + 4), s1 = ld32(b + 8), s2 = ld32(b + 12);
        float sc0, mn0, sc1, mn1;
        kscale_min(s0, s1, s2, 2 * c, sc0, mn0);
        kscale_min(s0, s1, s2, 2 * c + 1, sc1, mn1);
        const float d0 = d * sc0, m0 = dmin * mn0, d1 = d * sc1, m1 = dmin * mn1;
        const uint2 qw = *reinterpret_cast<const uint2 *>(b + (T == TACTIC_TYPE_Q5_K ? 48 : 16) + 32 * c + 8 * p);
        const uint32_t q[2] = {qw.x, qw.y};
        uint32_t h[2] = {0, 0};
        if constexpr (T == TACTIC_TYPE_Q5_K) {  // bits 2c / 2c+1 of qh[8p .. 8p+7]
            const uint2 hw = *reinterpret_cast<const uint2 *>(b + 16 + 8 * p);
            h[0] = hw.x, h[1] = hw.y;
        }
#pragma unroll
        for (int i = 0; i < 2; i++) {
            uint32_t lo = q[i] & 0x0f0f0f0fu, hi = (q[i] >> 4) & 0x0f0f0f0fu;
            if constexpr (T == TACTIC_TYPE_Q5_K) {
                lo |= ((h[i] >> (2 * c)) & 0x01010101u) << 4;
                hi |= ((h[i] >> (2 * c + 1)) & 0x01010101u) << 4;
            }
#pragma unroll
            for (int k = 0; k < 4; k++) {
                v[4 * i + k] = fmaf(d0, bytef(lo, k, 0.f), -m0);
                v[8 + 4 * i + k] = fmaf(d1, bytef(hi, k, 0.f), -m1);
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

// The same chunk as decode<T>(), split as value_i = gd[g] * q_i + gm[g] for the NG
// groups of CE/NG consecutive chunk elements: the matvec then needs one FFMA per
// element (sum q x) and one per group, not two per element. Offsets such as Q4_0's
// -8 are folded into q exactly (bytef); gm carries only real minimums.
template <int T> struct Groups { static constexpr int NG = 1; };
template <> struct Groups<TACTIC_TYPE_Q4_K> { static constexpr int NG = 2; };
template <> struct Groups<TACTIC_TYPE_Q5_K> { static constexpr int NG = 2; };
template <> struct Groups<TACTIC_TYPE_Q6_K> { static constexpr int NG = 4; };

template <int T>
__device__ __forceinline__ void decode_affine(const uint8_t *__restrict__ b, int sub, float *q, float *gd,
                                              float *gm) {
    if constexpr (T == TACTIC_TYPE_Q4_0 || T == TACTIC_TYPE_Q5_0 || T == TACTIC_TYPE_Q4_1 ||
                  T == TACTIC_TYPE_Q5_1) {
        constexpr bool five = T == TACTIC_TYPE_Q5_0 || T == TACTIC_TYPE_Q5_1;
        constexpr bool has_min = T == TACTIC_TYPE_Q4_1 || T == TACTIC_TYPE_Q5_1;
        float d, m = 0.f;
        uint32_t w, qh = 0;
        if constexpr (has_min) {
            const uint32_t dm = ld32(b);
            d = h2f(dm & 0xffffu);
            m = h2f(dm >> 16);
            if constexpr (five) qh = ld32(b + 4);
            w = ld32(b + (five ? 8 : 4) + 4 * sub);
        } else {
            d = h2f(ld16(b));
            if constexpr (five) qh = ld32a2(b + 2);
            w = ld32a2(b + (five ? 6 : 2) + 4 * sub);
        }
        uint32_t lo = w & 0x0f0f0f0fu, hi = (w >> 4) & 0x0f0f0f0fu;
        if constexpr (five) {
            lo |= spread4(qh >> (4 * sub)) << 4;
            hi |= spread4(qh >> (16 + 4 * sub)) << 4;
        }
        const float off = has_min ? 0.f : (five ? 16.f : 8.f);
#pragma unroll
        for (int k = 0; k < 4; k++) {
            q[k] = bytef(lo, k, off);
            q[4 + k] = bytef(hi, k, off);
        }
        gd[0] = d;
        gm[0] = m;
    } else if constexpr (T == TACTIC_TYPE_Q8_0) {
        const uint32_t w0 = ld32a2(b + 2 + 8 * sub) ^ 0x80808080u, w1 = ld32a2(b + 6 + 8 * sub) ^ 0x80808080u;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            q[k] = bytef(w0, k, 128.f);
            q[4 + k] = bytef(w1, k, 128.f);
        }
        gd[0] = h2f(ld16(b));
        gm[0] = 0.f;
    } else if constexpr (T == TACTIC_TYPE_Q4_K || T == TACTIC_TYPE_Q5_K) {
        const int c = sub >> 2, p = sub & 3;
        const uint32_t dm = ld32(b);
        const float d = h2f(dm & 0xffffu), dmin = h2f(dm >> 16);
        const uint32_t s0 = ld32(b + 4), s1 = ld32(b + 8), s2 = ld32(b + 12);
        float sc0, mn0, sc1, mn1;
        kscale_min(s0, s1, s2, 2 * c, sc0, mn0);
        kscale_min(s0, s1, s2, 2 * c + 1, sc1, mn1);
        gd[0] = d * sc0, gm[0] = -(dmin * mn0), gd[1] = d * sc1, gm[1] = -(dmin * mn1);
        const uint2 qw = *reinterpret_cast<const uint2 *>(b + (T == TACTIC_TYPE_Q5_K ? 48 : 16) + 32 * c + 8 * p);
        const uint32_t qq[2] = {qw.x, qw.y};
        uint32_t h[2] = {0, 0};
        if constexpr (T == TACTIC_TYPE_Q5_K) {
            const uint2 hw = *reinterpret_cast<const uint2 *>(b + 16 + 8 * p);
            h[0] = hw.x, h[1] = hw.y;
        }
#pragma unroll
        for (int i = 0; i < 2; i++) {
            uint32_t lo = qq[i] & 0x0f0f0f0fu, hi = (qq[i] >> 4) & 0x0f0f0f0fu;
            if constexpr (T == TACTIC_TYPE_Q5_K) {
                lo |= ((h[i] >> (2 * c)) & 0x01010101u) << 4;
                hi |= ((h[i] >> (2 * c + 1)) & 0x01010101u) << 4;
            }
#pragma unroll
            for (int k = 0; k < 4; k++) {
                q[4 * i + k] = bytef(lo, k, 0.f);
                q[8 + 4 * i + k] = bytef(hi, k, 0.f);
            }
        }
    } else if constexpr (T == TACTIC_TYPE_Q6_K) {
        const int hh = sub >> 2, qq = sub & 3;
        const float d = h2f(ld16(b + 208));
        const uint8_t *ql = b + 64 * hh + 8 * qq;
        const uint8_t *qh = b + 128 + 32 * hh + 8 * qq;
        const int8_t *sc = reinterpret_cast<const int8_t *>(b + 192 + 8 * hh + (qq >> 1));
        const uint32_t A[2] = {ld32a2(ql), ld32a2(ql + 4)}, B[2] = {ld32a2(ql + 32), ld32a2(ql + 36)};
        const uint32_t H[2] = {ld32a2(qh), ld32a2(qh + 4)};
#pragma unroll
        for (int k = 0; k < 4; k++) {
            gd[k] = d * float(sc[2 * k]);
            gm[k] = 0.f;
#pragma unroll
            for (int w = 0; w < 2; w++) {
                const uint32_t src = (k & 1) ? B[w] : A[w];
                const uint32_t lo = (k < 2 ? src : src >> 4) & 0x0f0f0f0fu;
                const uint32_t q6 = lo | (((H[w] >> (2 * k)) & 0x03030303u) << 4);
#pragma unroll
                for (int j = 0; j < 4; j++) q[8 * k + 4 * w + j] = bytef(q6, j, 32.f);
            }
        }
    } else {  // float rows: the values themselves
        decode<T>(b, sub, q);
        gd[0] = 1.f;
        gm[0] = 0.f;
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
        for (int i = 0; i < CE; i += 4) {  // runs of >= 4 at multiples of 4: 16-byte aligned
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
