// AVX2 versions of the element-wise ops of ops.cpp, as ops_avx512.cpp's in 8 lanes; only
// called when the kernel choice is AVX2 (after the run-time check). On an AVX2-only CPU the
// gated activation's scalar tanh / expm1 took 14% of Gemma 3 270M's prefill and the f16
// rounding 3% (perf, session 18: docs/PERFORMANCE.md). Held to a float64 twin by
// tests/test_cpu_ops.py, and to llama.cpp end to end, per path, by tests/test_cpu_paths.py.
#include <immintrin.h>

#include <cstdint>

#include "../simd_target.h"

TACTIC_TARGET_AVX2_BEGIN  // (this file's functions; not the templates of the headers above)
#include "../simd_avx2.h"

namespace tactic {

// g = gelu_tanh(g)·u (gelu = true) or silu(g)·u over whole vectors; returns how many
// elements it did (ops.cpp's scalar loop does the rest). Likewise below.
int gated_activation_avx2(float *g, const float *u, int n, bool gelu) {
    const __m256 one = _mm256_set1_ps(1.f), half = _mm256_set1_ps(0.5f);
    const __m256 c = _mm256_set1_ps(0.79788456080286535588f), k = _mm256_set1_ps(0.044715f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        __m256 y;
        if (gelu) {
            // tanh(z) = 1 − 2 / (e^{2z} + 1)
            const __m256 z = _mm256_mul_ps(_mm256_mul_ps(c, x), _mm256_fmadd_ps(_mm256_mul_ps(k, x), x, one));
            const __m256 e = simd::exp(_mm256_add_ps(z, z));
            const __m256 t = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.f), _mm256_add_ps(e, one)));
            y = _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, t));
        } else {
            y = _mm256_div_ps(x, _mm256_add_ps(one, simd::exp(_mm256_sub_ps(_mm256_setzero_ps(), x))));
        }
        _mm256_storeu_ps(g + i, _mm256_mul_ps(y, _mm256_loadu_ps(u + i)));
    }
    return i;
}

// x[i] = f16(x[i]·scale) widened back; dst (may be null) also gets the f16 bits.
int round_f16_avx2(float *x, int n, float scale, uint16_t *dst) {
    const __m256 s = _mm256_set1_ps(scale);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_mul_ps(_mm256_loadu_ps(x + i), s),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        if (dst) _mm_storeu_si128(reinterpret_cast<__m128i *>(dst + i), h);
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(h));
    }
    return i;
}

// dst[i] = f16(x[i]).
int to_f16_avx2(const float *x, int n, uint16_t *dst) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i *>(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    return i;
}

}  // namespace tactic

TACTIC_TARGET_END
