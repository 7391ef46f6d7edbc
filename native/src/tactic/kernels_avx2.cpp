// AVX2/FMA/F16C twins of kernels.cpp (its functions compiled for AVX2/FMA/F16C: simd_target.h; called only
// after the run-time check in kernels.cpp). Tails that are not a multiple of 8 run scalar.
#include <immintrin.h>

#include "../common.h"
#include "kernels.h"

#include "../simd_target.h"

TACTIC_TARGET_AVX2_BEGIN  // (this file's functions; not the templates of the headers above)
#include "../simd_avx2.h"

namespace tactic {
namespace tk {
namespace avx2 {
namespace {

}  // namespace

void dots_group_f16(const float *Q, int g, const uint16_t *k, int D, float *out) {
    const int D8 = D & ~7;
    for (int h0 = 0; h0 < g; h0 += 8) {
        const int gn = g - h0 < 8 ? g - h0 : 8;
        __m256 acc[8];
        for (int h = 0; h < gn; h++) acc[h] = _mm256_setzero_ps();
        for (int d = 0; d < D8; d += 8) {
            const __m256 kv = simd::load_f16x8(k + d);
            for (int h = 0; h < gn; h++)
                acc[h] = _mm256_fmadd_ps(_mm256_loadu_ps(Q + size_t(h0 + h) * D + d), kv, acc[h]);
        }
        for (int h = 0; h < gn; h++) {
            float s = simd::hsum(acc[h]);
            for (int d = D8; d < D; d++) s += Q[size_t(h0 + h) * D + d] * f16_to_f32(k[d]);
            out[h0 + h] = s;
        }
    }
}

void axpy_group_f16(const float *w, int g, const uint16_t *v, int D, float *acc) {
    const int D8 = D & ~7;
    for (int d = 0; d < D8; d += 8) {
        const __m256 vv = simd::load_f16x8(v + d);
        for (int h = 0; h < g; h++) {
            float *a = acc + size_t(h) * D + d;
            _mm256_storeu_ps(a, _mm256_fmadd_ps(_mm256_set1_ps(w[h]), vv, _mm256_loadu_ps(a)));
        }
    }
    for (int d = D8; d < D; d++) {
        const float x = f16_to_f32(v[d]);
        for (int h = 0; h < g; h++) acc[size_t(h) * D + d] += w[h] * x;
    }
}

void dots4_f32(const float *X, const float *C, int n_c, int D, float *out) {
    const int D8 = D & ~7;
    const float *x0 = X, *x1 = X + D, *x2 = X + 2 * size_t(D), *x3 = X + 3 * size_t(D);
    for (int c = 0; c < n_c; c++) {
        const float *cc = C + size_t(c) * D;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int d = 0; d < D8; d += 8) {
            const __m256 cv = _mm256_loadu_ps(cc + d);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + d), cv, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x1 + d), cv, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x2 + d), cv, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x3 + d), cv, a3);
        }
        float s0 = simd::hsum(a0), s1 = simd::hsum(a1), s2 = simd::hsum(a2), s3 = simd::hsum(a3);
        for (int d = D8; d < D; d++) {
            s0 += x0[d] * cc[d];
            s1 += x1[d] * cc[d];
            s2 += x2[d] * cc[d];
            s3 += x3[d] * cc[d];
        }
        out[c] = s0;
        out[size_t(n_c) + c] = s1;
        out[2 * size_t(n_c) + c] = s2;
        out[3 * size_t(n_c) + c] = s3;
    }
}

void dots1_f32(const float *x, const float *C, int n_c, int D, float *out) {
    const int D8 = D & ~7;
    for (int c = 0; c < n_c; c++) {
        const float *cc = C + size_t(c) * D;
        __m256 a = _mm256_setzero_ps();
        for (int d = 0; d < D8; d += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(x + d), _mm256_loadu_ps(cc + d), a);
        float s = simd::hsum(a);
        for (int d = D8; d < D; d++) s += x[d] * cc[d];
        out[c] = s;
    }
}

void f16_to_f32_row(const uint16_t *x, float *y, int n) {
    const int n8 = n & ~7;
    for (int i = 0; i < n8; i += 8) _mm256_storeu_ps(y + i, simd::load_f16x8(x + i));
    for (int i = n8; i < n; i++) y[i] = f16_to_f32(x[i]);
}

}  // namespace avx2
}  // namespace tk
}  // namespace tactic

TACTIC_TARGET_END
