// AVX2/FMA dot products (its functions compiled for them: simd_target.h; called only after
// cpu_has_avx2_fma()). Each is held equal to its scalar twin by tests/test_quant.py.
//
// Every quantized kernel is written once as a "tile": one weight row against NT
// activation rows (NT = 1..4). The weight block is unpacked to int8 once and reused
// for all NT tokens, which is what makes prefill compute-bound rather than
// unpack-bound; NT = 1 is the plain vec_dot used by decode.
//
// Integer products use the maddubs trick: maddubs(unsigned u8, signed i8) gives exact
// i16 pair sums here (|pair| <= 2·63·128 < 32767), madd widens them to i32.
//
// Only static (internal) functions live in this file, and the AVX2 target covers only
// them (simd_target.h), so nothing compiled with AVX2 can be merged by the linker into
// the scalar path.
#include <immintrin.h>

#include <cstring>

#include "blocks.h"

#include "../simd_target.h"

TACTIC_TARGET_AVX2_BEGIN  // (this file's functions; not the templates of the headers above)
#include "../simd_avx2.h"

namespace tactic {
namespace q {

namespace {

// Tokens per tile (measured on the gemma shapes: 8 beats 4 by 10-15% for both kinds).
constexpr int kLegacyTokens = 8;
constexpr int kKQuantTokens = 8;

inline float f16(const uint8_t *p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

inline __m256i load256(const void *p) { return _mm256_loadu_si256(static_cast<const __m256i *>(p)); }

// i32x8 of pairwise sums of u·s (u unsigned bytes, s signed bytes).
inline __m256i dot_us(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}
// i32x8 of pairwise sums of x·y, both signed bytes.
inline __m256i dot_ss(__m256i x, __m256i y) { return dot_us(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x)); }

// 32 nibbles of 16 bytes: low nibbles are elements 0..15, high nibbles 16..31.
inline __m256i unpack_nibbles(const uint8_t *qs) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i *>(qs));
    const __m256i v = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

// 0xFF in byte j where bit j of the 32-bit value is set, else 0.
inline __m256i bits_to_bytes(uint32_t bits) {
    const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202,
                                            0x0303030303030303);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(int(bits)), shuf);
    v = _mm256_or_si256(v, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1));
}

inline uint32_t u32_of(const uint8_t *p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// ---- legacy blocks against Q8_0 / Q8_1 ---------------------------------------------------

// Signed weights x Q8_0: the block's weights as 32 signed bytes.
struct Q4_0K {
    static constexpr size_t kSize = sizeof(BlockQ4_0);
    static __m256i weights(const uint8_t *b) {
        return _mm256_sub_epi8(unpack_nibbles(b + 2), _mm256_set1_epi8(8));
    }
};
struct Q5_0K {
    static constexpr size_t kSize = sizeof(BlockQ5_0);
    static __m256i weights(const uint8_t *b) {
        // (nibble | bit<<4) - 16 == nibble | 0xF0 where the bit is clear (as int8)
        const __m256i hi = _mm256_andnot_si256(bits_to_bytes(u32_of(b + 2)), _mm256_set1_epi8(char(0xF0)));
        return _mm256_or_si256(unpack_nibbles(b + 6), hi);
    }
};
struct Q8_0K {
    static constexpr size_t kSize = sizeof(BlockQ8_0);
    static __m256i weights(const uint8_t *b) { return load256(b + 2); }
};

template <class K, int NT>
void row_signed(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *sc, float *res) {
    __m256 acc[NT];
    for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK; i++, w += K::kSize) {
        const __m256i qw = K::weights(w);
        const __m256i aw = _mm256_sign_epi8(qw, qw);
        const float dw = f16(w);
        const __m256 dwv = _mm256_set1_ps(dw);
        for (int t = 0; t < NT; t++) {
            const BlockQ8_0 *y = reinterpret_cast<const BlockQ8_0 *>(a + t * as) + i;
            const __m256i p = dot_us(aw, _mm256_sign_epi8(load256(y->qs), qw));
            const __m256 d = sc ? _mm256_mul_ps(dwv, _mm256_broadcast_ss(sc + t * (n / QK) + i))
                                : _mm256_set1_ps(dw * f16(y->d));
            acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc[t]);
        }
    }
    for (int t = 0; t < NT; t++) res[t] = simd::hsum(acc[t]);
}

// Unsigned weights with a min x Q8_1: d·d8·Σq·q8 + m·s8.
struct Q4_1K {
    static constexpr size_t kSize = sizeof(BlockQ4_1);
    static __m256i weights(const uint8_t *b) { return unpack_nibbles(b + 4); }
};
struct Q5_1K {
    static constexpr size_t kSize = sizeof(BlockQ5_1);
    static __m256i weights(const uint8_t *b) {
        const __m256i hi = _mm256_and_si256(bits_to_bytes(u32_of(b + 4)), _mm256_set1_epi8(0x10));
        return _mm256_or_si256(unpack_nibbles(b + 8), hi);
    }
};

template <class K, int NT>
void row_min(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *, float *res) {
    __m256 acc[NT];
    float accm[NT];
    for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps(), accm[t] = 0.f;
    for (int64_t i = 0; i < n / QK; i++, w += K::kSize) {
        const __m256i qw = K::weights(w);
        const float dw = f16(w), mw = f16(w + 2);
        for (int t = 0; t < NT; t++) {
            const BlockQ8_1 *y = reinterpret_cast<const BlockQ8_1 *>(a + t * as) + i;
            const __m256i p = dot_us(qw, load256(y->qs));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * f16(y->d)), _mm256_cvtepi32_ps(p), acc[t]);
            accm[t] += mw * f16(y->s);
        }
    }
    for (int t = 0; t < NT; t++) res[t] = simd::hsum(acc[t]) + accm[t];
}

// ---- K-quants against Q8_K -----------------------------------------------------------------

// The 8 scales and 8 mins of a Q4_K/Q5_K super-block as bytes: sm[0..7], sm[8..15].
inline void k4_scales_mins(const uint8_t *s, uint8_t sm[16]) {
    uint32_t u[4];
    std::memcpy(u, s, 12);
    const uint32_t m1 = 0x3f3f3f3f, m2 = 0x0f0f0f0f, m3 = 0x03030303;
    u[3] = ((u[2] >> 4) & m2) | (((u[1] >> 6) & m3) << 4);
    const uint32_t mins_lo = u[1] & m1;
    u[1] = (u[2] & m2) | (((u[0] >> 6) & m3) << 4);
    u[2] = mins_lo;
    u[0] &= m1;
    std::memcpy(sm, u, 16);
}

template <bool kFive, int NT>
void row_k45(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *, float *res) {
    constexpr size_t kSize = kFive ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
    __m256 acc[NT];
    for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    const __m128i dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    for (int64_t i = 0; i < n / QK_K; i++, w += kSize) {
        uint8_t sm[16];
        k4_scales_mins(w + 4, sm);
        const float d = f16(w), dmin = f16(w + 2);
        const uint8_t *qs = w + (kFive ? 48 : 16);
        const __m256i qh = kFive ? load256(w + 16) : _mm256_setzero_si256();
        // mins, each twice, as i16: madd with the 16 bsums gives mn_j·(bsums[2j] + bsums[2j+1])
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(sm + 8)), dup));
        __m256i sumi[NT];
        for (int t = 0; t < NT; t++) sumi[t] = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            const __m256i q = load256(qs + 32 * c);
            __m256i lo = _mm256_and_si256(q, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            if (kFive) {
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4));
            }
            const __m256i sc_lo = _mm256_set1_epi16(sm[2 * c]), sc_hi = _mm256_set1_epi16(sm[2 * c + 1]);
            for (int t = 0; t < NT; t++) {
                const int8_t *q8 = (reinterpret_cast<const BlockQ8_K *>(a + t * as) + i)->qs + 64 * c;
                const __m256i pl = _mm256_madd_epi16(sc_lo, _mm256_maddubs_epi16(lo, load256(q8)));
                const __m256i ph = _mm256_madd_epi16(sc_hi, _mm256_maddubs_epi16(hi, load256(q8 + 32)));
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(pl, ph));
            }
        }
        for (int t = 0; t < NT; t++) {
            const BlockQ8_K *y = reinterpret_cast<const BlockQ8_K *>(a + t * as) + i;
            const __m256i msum = _mm256_madd_epi16(mins, load256(y->bsums));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * y->d), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
            acc[t] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * y->d), _mm256_cvtepi32_ps(msum), acc[t]);
        }
    }
    for (int t = 0; t < NT; t++) res[t] = simd::hsum(acc[t]);
}

// Q6_K: Σ sc·(q−32)·q8 = Σ sc·q·q8 − 32·Σ_g sc_g·bsums[g] (q unsigned 0..63).
template <int NT>
void row_q6k(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *, float *res) {
    __m256 acc[NT];
    for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x30);
    for (int64_t i = 0; i < n / QK_K; i++, w += sizeof(BlockQ6_K)) {
        const BlockQ6_K *x = reinterpret_cast<const BlockQ6_K *>(w);
        const float d = f16(x->d);
        // 32·sc as i16: madd with the 16 bsums gives the −32 offset term, exactly
        const __m256i sc32 = _mm256_slli_epi16(
            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(x->scales))), 5);
        __m256i sumi[NT];
        for (int t = 0; t < NT; t++) {
            const BlockQ8_K *y = reinterpret_cast<const BlockQ8_K *>(a + t * as) + i;
            sumi[t] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_madd_epi16(sc32, load256(y->bsums)));
        }
        for (int h = 0; h < 2; h++) {
            const __m256i ql0 = load256(x->ql + 64 * h), ql1 = load256(x->ql + 64 * h + 32);
            const __m256i qh = load256(x->qh + 32 * h);
            for (int k = 0; k < 4; k++) {
                const __m256i l4 = k == 0 ? _mm256_and_si256(ql0, m4)
                                 : k == 1 ? _mm256_and_si256(ql1, m4)
                                 : k == 2 ? _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4)
                                          : _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4);
                // bits 2k..2k+1 of qh moved to bits 4..5
                const __m256i h2 = k < 2 ? _mm256_slli_epi16(qh, 4 - 2 * k) : _mm256_srli_epi16(qh, 2 * k - 4);
                const __m256i q = _mm256_or_si256(l4, _mm256_and_si256(h2, m3));
                const int g = 8 * h + 2 * k;
                const __m256i sc = _mm256_set_m128i(_mm_set1_epi16(x->scales[g + 1]), _mm_set1_epi16(x->scales[g]));
                for (int t = 0; t < NT; t++) {
                    const int8_t *q8 = (reinterpret_cast<const BlockQ8_K *>(a + t * as) + i)->qs + 128 * h + 32 * k;
                    sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(sc, _mm256_maddubs_epi16(q, load256(q8))));
                }
            }
        }
        for (int t = 0; t < NT; t++) {
            const BlockQ8_K *y = reinterpret_cast<const BlockQ8_K *>(a + t * as) + i;
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * y->d), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
        }
    }
    for (int t = 0; t < NT; t++) res[t] = simd::hsum(acc[t]);
}

// ---- float rows ----------------------------------------------------------------------------

inline __m256 load_f32x8(const uint8_t *p) { return _mm256_loadu_ps(reinterpret_cast<const float *>(p)); }
inline __m256 load_f16x8(const uint8_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
}
inline __m256 load_bf16x8(const uint8_t *p) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}
inline float f32_at(const uint8_t *p) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
}
inline float bf16_at(const uint8_t *p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    const uint32_t u = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

template <int kBytes, __m256 (*Load)(const uint8_t *), float (*Scalar)(const uint8_t *), int NT>
void row_float(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *, float *res) {
    for (int t = 0; t < NT; t++) {
        const uint8_t *x = a + t * as;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) {
            acc0 = _mm256_fmadd_ps(Load(w + kBytes * i), Load(x + kBytes * i), acc0);
            acc1 = _mm256_fmadd_ps(Load(w + kBytes * (i + 8)), Load(x + kBytes * (i + 8)), acc1);
        }
        for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(Load(w + kBytes * i), Load(x + kBytes * i), acc0);
        float s = simd::hsum(_mm256_add_ps(acc0, acc1));
        for (; i < n; i++) s += Scalar(w + kBytes * i) * Scalar(x + kBytes * i);
        res[t] = s;
    }
}

// ---- drivers -------------------------------------------------------------------------------

using RowFn = void (*)(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *, float *res);

// kMaxNT: tokens per tile; more tokens amortize the weight unpack further, until the
// accumulators no longer fit in the 16 ymm registers.
template <template <int> class R, int kMaxNT = 4>
struct Kernel {
    static float dot(int64_t n, const void *w, const void *a) {
        float r;
        R<1>::run(n, static_cast<const uint8_t *>(w), static_cast<const uint8_t *>(a), 0, nullptr, &r);
        return r;
    }
    template <int NT>
    static void rest(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *sc, int left,
                     float *res) {
        if constexpr (NT > 0) {
            if (left == NT) return R<NT>::run(n, w, a, as, sc, res);
            rest<NT - 1>(n, w, a, as, sc, left, res);
        }
    }
    static void tile(int64_t n, const void *vw, size_t ws, int nr, const void *va, size_t as, const float *sc,
                     int nt, float *out, int64_t ldo) {
        const int64_t nbs = n / QK;  // scales per activation row (used only with Q8_0 rows)
        const uint8_t *w = static_cast<const uint8_t *>(vw), *a = static_cast<const uint8_t *>(va);
        for (int r = 0; r < nr; r++, w += ws) {
            float res[kMaxNT];
            int t = 0;
            for (; t + kMaxNT <= nt; t += kMaxNT) {
                R<kMaxNT>::run(n, w, a + t * as, as, sc ? sc + t * nbs : nullptr, res);
                for (int k = 0; k < kMaxNT; k++) out[(t + k) * ldo + r] = res[k];
            }
            const int left = nt - t;
            rest<kMaxNT - 1>(n, w, a + t * as, as, sc ? sc + t * nbs : nullptr, left, res);
            for (int k = 0; k < left; k++) out[(t + k) * ldo + r] = res[k];
        }
    }
};

template <int NT> struct RQ4_0 { static void run(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *sc, float *r) { row_signed<Q4_0K, NT>(n, w, a, as, sc, r); } };
template <int NT> struct RQ5_0 { static void run(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *sc, float *r) { row_signed<Q5_0K, NT>(n, w, a, as, sc, r); } };
template <int NT> struct RQ8_0 { static void run(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *sc, float *r) { row_signed<Q8_0K, NT>(n, w, a, as, sc, r); } };
template <int NT> struct RQ4_1 { static void run(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *sc, float *r) { row_min<Q4_1K, NT>(n, w, a, as, sc, r); } };
template <int NT> struct RQ5_1 { static void run(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *sc, float *r) { row_min<Q5_1K, NT>(n, w, a, as, sc, r); } };
template <int NT> struct RQ4_K { static void run(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *sc, float *r) { row_k45<false, NT>(n, w, a, as, sc, r); } };
template <int NT> struct RQ5_K { static void run(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *sc, float *r) { row_k45<true, NT>(n, w, a, as, sc, r); } };
template <int NT> struct RQ6_K { static void run(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *sc, float *r) { row_q6k<NT>(n, w, a, as, sc, r); } };
template <int NT> struct RF32 { static void run(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *sc, float *r) { row_float<4, load_f32x8, f32_at, NT>(n, w, a, as, sc, r); } };
template <int NT> struct RF16 { static void run(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *sc, float *r) { row_float<2, load_f16x8, f16, NT>(n, w, a, as, sc, r); } };
template <int NT> struct RBF16 { static void run(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *sc, float *r) { row_float<2, load_bf16x8, bf16_at, NT>(n, w, a, as, sc, r); } };

}  // namespace

VecDotFn vec_dot_avx2(uint32_t type) {
    switch (type) {
        case GGML_F32: return Kernel<RF32>::dot;
        case GGML_F16: return Kernel<RF16>::dot;
        case GGML_BF16: return Kernel<RBF16>::dot;
        case GGML_Q4_0: return Kernel<RQ4_0>::dot;
        case GGML_Q4_1: return Kernel<RQ4_1>::dot;
        case GGML_Q5_0: return Kernel<RQ5_0>::dot;
        case GGML_Q5_1: return Kernel<RQ5_1>::dot;
        case GGML_Q8_0: return Kernel<RQ8_0>::dot;
        case GGML_Q4_K: return Kernel<RQ4_K>::dot;
        case GGML_Q5_K: return Kernel<RQ5_K>::dot;
        case GGML_Q6_K: return Kernel<RQ6_K>::dot;
        default: return nullptr;
    }
}

DotTileFn dot_tile_avx2(uint32_t type) {
    switch (type) {
        case GGML_F32: return Kernel<RF32>::tile;
        case GGML_F16: return Kernel<RF16>::tile;
        case GGML_BF16: return Kernel<RBF16>::tile;
        case GGML_Q4_0: return Kernel<RQ4_0, kLegacyTokens>::tile;
        case GGML_Q4_1: return Kernel<RQ4_1, kLegacyTokens>::tile;
        case GGML_Q5_0: return Kernel<RQ5_0, kLegacyTokens>::tile;
        case GGML_Q5_1: return Kernel<RQ5_1, kLegacyTokens>::tile;
        case GGML_Q8_0: return Kernel<RQ8_0, kLegacyTokens>::tile;
        case GGML_Q4_K: return Kernel<RQ4_K, kKQuantTokens>::tile;
        case GGML_Q5_K: return Kernel<RQ5_K, kKQuantTokens>::tile;
        case GGML_Q6_K: return Kernel<RQ6_K, kKQuantTokens>::tile;
        default: return nullptr;
    }
}

}  // namespace q
}  // namespace tactic

TACTIC_TARGET_END
