// Small AVX2/F16C helpers shared by the *_avx2.cpp kernel files. Include it only from
// those files, inside their AVX2 target region (simd_target.h); internal linkage keeps these
// definitions out of code that runs without the run-time CPU check.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace tactic {
namespace simd {

// Sum of the 8 lanes.
static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// 8 f16 values widened to f32.
static inline __m256 load_f16x8(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
}

}  // namespace simd
}  // namespace tactic
