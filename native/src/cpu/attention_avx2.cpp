// AVX2 + F16C kernels of cpu/attention.cpp; its functions compiled for them (simd_target.h) and
// only called after a run-time CPU check.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "../simd_target.h"

TACTIC_TARGET_AVX2_BEGIN  // (this file's functions; not the templates of the headers above)
#include "../simd_avx2.h"

namespace tactic {

namespace {
}  // namespace

void qk_dots_avx2(const float *q, int n_q, int D, const uint16_t *K, const int32_t *rows, int n_rows, float *out,
                  int stride) {
    for (int r = 0; r < n_rows; r++) {
        const uint16_t *k = K + size_t(rows ? rows[r] : r) * size_t(D);
        int h = 0;
        for (; h + 4 <= n_q; h += 4) {  // four heads share each key load
            const float *q0 = q + size_t(h) * D;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int d = 0; d < D; d += 8) {
                const __m256 kv = simd::load_f16x8(k + d);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + d), kv, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + D + d), kv, a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + 2 * D + d), kv, a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + 3 * D + d), kv, a3);
            }
            out[size_t(h) * stride + r] = simd::hsum(a0);
            out[size_t(h + 1) * stride + r] = simd::hsum(a1);
            out[size_t(h + 2) * stride + r] = simd::hsum(a2);
            out[size_t(h + 3) * stride + r] = simd::hsum(a3);
        }
        for (; h < n_q; h++) {
            const float *qh = q + size_t(h) * D;
            __m256 a = _mm256_setzero_ps();
            for (int d = 0; d < D; d += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(qh + d), simd::load_f16x8(k + d), a);
            out[size_t(h) * stride + r] = simd::hsum(a);
        }
    }
}

void pv_accumulate_avx2(float *acc, int n_q, int D, const float *w, int stride, const uint16_t *V,
                        const int32_t *rows, int n_rows) {
    // Two rows at a time halve the accumulator traffic.
    int r = 0;
    for (; r + 2 <= n_rows; r += 2) {
        const uint16_t *v0 = V + size_t(rows ? rows[r] : r) * size_t(D);
        const uint16_t *v1 = V + size_t(rows ? rows[r + 1] : r + 1) * size_t(D);
        for (int h = 0; h < n_q; h++) {
            const __m256 w0 = _mm256_set1_ps(w[size_t(h) * stride + r]);
            const __m256 w1 = _mm256_set1_ps(w[size_t(h) * stride + r + 1]);
            float *a = acc + size_t(h) * D;
            for (int d = 0; d < D; d += 8) {
                __m256 x = _mm256_loadu_ps(a + d);
                x = _mm256_fmadd_ps(w0, simd::load_f16x8(v0 + d), x);
                x = _mm256_fmadd_ps(w1, simd::load_f16x8(v1 + d), x);
                _mm256_storeu_ps(a + d, x);
            }
        }
    }
    for (; r < n_rows; r++) {
        const uint16_t *v0 = V + size_t(rows ? rows[r] : r) * size_t(D);
        for (int h = 0; h < n_q; h++) {
            const __m256 w0 = _mm256_set1_ps(w[size_t(h) * stride + r]);
            float *a = acc + size_t(h) * D;
            for (int d = 0; d < D; d += 8) _mm256_storeu_ps(a + d, _mm256_fmadd_ps(w0, simd::load_f16x8(v0 + d), _mm256_loadu_ps(a + d)));
        }
    }
}

}  // namespace tactic

TACTIC_TARGET_END
