// AVX-512 versions of the element-wise ops of ops.cpp that showed in the prefill
// profile (the gated activation's tanh/exp, f16 rounding); only called after
// cpu_has_avx512_vnni(). Held to llama.cpp end to end, per path, by tests/test_cpu_paths.py.
#include <immintrin.h>

#include <cstdint>

#include "../simd_target.h"

TACTIC_TARGET_AVX512_BEGIN  // (this file's functions; not the templates of the headers above)
#include "../simd_avx512.h"

namespace tactic {

// g = gelu_tanh(g)·u (gelu = true) or silu(g)·u over whole vectors; returns how many
// elements it did (ops.cpp's scalar loop does the rest). Likewise below.
int gated_activation_avx512(float *g, const float *u, int n, bool gelu) {
    const __m512 one = _mm512_set1_ps(1.f), half = _mm512_set1_ps(0.5f);
    const __m512 c = _mm512_set1_ps(0.79788456080286535588f), k = _mm512_set1_ps(0.044715f);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 x = _mm512_loadu_ps(g + i);
        __m512 y;
        if (gelu) {
            // tanh(z) = 1 − 2 / (e^{2z} + 1)
            const __m512 z = _mm512_mul_ps(_mm512_mul_ps(c, x), _mm512_fmadd_ps(_mm512_mul_ps(k, x), x, one));
            const __m512 e = simd512::exp(_mm512_add_ps(z, z));
            const __m512 t = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.f), _mm512_add_ps(e, one)));
            y = _mm512_mul_ps(_mm512_mul_ps(half, x), _mm512_add_ps(one, t));
        } else {
            y = _mm512_div_ps(x, _mm512_add_ps(one, simd512::exp(_mm512_sub_ps(_mm512_setzero_ps(), x))));
        }
        _mm512_storeu_ps(g + i, _mm512_mul_ps(y, _mm512_loadu_ps(u + i)));
    }
    return i;
}

// x[i] = f16(x[i]·scale) widened back; dst (may be null) also gets the f16 bits.
int round_f16_avx512(float *x, int n, float scale, uint16_t *dst) {
    const __m512 s = _mm512_set1_ps(scale);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i h = _mm512_cvtps_ph(_mm512_mul_ps(_mm512_loadu_ps(x + i), s),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        if (dst) _mm256_storeu_si256(reinterpret_cast<__m256i *>(dst + i), h);
        _mm512_storeu_ps(x + i, _mm512_cvtph_ps(h));
    }
    return i;
}

// dst[i] = f16(x[i]).
int to_f16_avx512(const float *x, int n, uint16_t *dst) {
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(dst + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    return i;
}

}  // namespace tactic

TACTIC_TARGET_END
