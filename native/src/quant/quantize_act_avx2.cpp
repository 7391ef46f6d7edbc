// AVX2 activation quantizers (Q8_0, Q8_1, Q8_K). They must give the same bytes as the
// scalar ones in quantize.cpp: the same f32 operations in the same order per element
// (the scale is computed in scalar code exactly as there), and round-half-even is
// what both nearest_int and _mm256_round_ps(NEAREST) do.
#include <immintrin.h>

#include <cstring>

#include "blocks.h"

#include "../simd_target.h"

TACTIC_TARGET_AVX2_BEGIN  // (this file's functions; not the templates of the headers above)

namespace tactic {
namespace q {

namespace {

inline float hmax(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

inline void put_f16(uint8_t *p, float f) {
    const uint16_t h = uint16_t(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
    std::memcpy(p, &h, 2);
}

// round(x·s) for 32 floats, as int8 in element order; also returns their i32 sums.
inline __m256i round_pack32(const float *x, __m256 s, __m256i *sum32) {
    __m256i i[4];
    for (int k = 0; k < 4; k++) {
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), s);
        i[k] = _mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    if (sum32) *sum32 = _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
    // packs work per 128-bit lane; the permute puts the 8 groups of 4 back in order
    const __m256i p16a = _mm256_packs_epi32(i[0], i[1]), p16b = _mm256_packs_epi32(i[2], i[3]);
    const __m256i p8 = _mm256_packs_epi16(p16a, p16b);
    return _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

inline float block_amax(const float *x, int n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < n; k += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
    return hmax(m);
}

inline int hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

}  // namespace

void quantize_act_q8_0_avx2(const float *x, BlockQ8_0 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        const float amax = block_amax(x, QK);
        const float id = amax != 0.f ? 127.f / amax : 0.f;
        put_f16(y[i].d, amax / 127.f);
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(y[i].qs), round_pack32(x, _mm256_set1_ps(id), nullptr));
    }
}

void quantize_act_q8_1_avx2(const float *x, BlockQ8_1 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        const float amax = block_amax(x, QK);
        const float d = amax / 127.f, id = amax != 0.f ? 127.f / amax : 0.f;
        put_f16(y[i].d, d);
        __m256i s32;
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(y[i].qs), round_pack32(x, _mm256_set1_ps(id), &s32));
        put_f16(y[i].s, float(hsum_i32(s32)) * d);
    }
}

void quantize_act_q8_K_avx2(const float *x, BlockQ8_K *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        const float amax = block_amax(x, QK_K);
        if (!(amax > 0.f)) {
            std::memset(&y[i], 0, sizeof(BlockQ8_K));
            continue;
        }
        // the signed value of the first element of largest magnitude, as the scalar loop
        float max = 0.f;
        const __m256 sign = _mm256_set1_ps(-0.0f), am = _mm256_set1_ps(amax);
        for (int k = 0; k < QK_K; k += 8) {
            const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)), am, _CMP_EQ_OQ));
            if (hit) {
                max = x[k + __builtin_ctz(unsigned(hit))];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m256 s = _mm256_set1_ps(iscale);
        for (int k = 0; k < QK_K; k += 32) {
            // values are within ±127 (x·iscale with |x| <= |max|), so saturation never bites
            const __m256i q = round_pack32(x + k, s, nullptr);
            _mm256_storeu_si256(reinterpret_cast<__m256i *>(y[i].qs + k), q);
            // bsums of the two 16-element groups: sign-extend to i16 and add pairs
            const __m256i lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(q));
            const __m256i hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(q, 1));
            const __m256i one = _mm256_set1_epi16(1);
            y[i].bsums[k / 16] = int16_t(hsum_i32(_mm256_madd_epi16(lo, one)));
            y[i].bsums[k / 16 + 1] = int16_t(hsum_i32(_mm256_madd_epi16(hi, one)));
        }
        y[i].d = 1 / iscale;
    }
}

}  // namespace q
}  // namespace tactic

TACTIC_TARGET_END
