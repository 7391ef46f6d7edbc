// Vector kernels of Tactic attention and clustering: f32 queries against f16 keys and
// values (the cache's format), and f32 blocks for K-means. Each has a scalar reference;
// an AVX2/FMA/F16C twin (kernels_avx2.cpp) is used when the CPU has those instructions.
#pragma once

#include <cstdint>

namespace tactic {
namespace tk {

// out[h] = dot(Q[h*D ..], k[0..D)) for h < g: g query heads against one f16 key,
// the key read once (a GQA group shares its keys).
void dots_group_f16(const float *Q, int g, const uint16_t *k, int D, float *out);
// acc[h*D + d] += w[h] * v[d] for h < g: one f16 value row into g accumulators.
void axpy_group_f16(const float *w, int g, const uint16_t *v, int D, float *acc);
// out[r*n_c + c] = dot(X[r*D ..], C[c*D ..]) for r < 4, c < n_c (K-means assignment).
void dots4_f32(const float *X, const float *C, int n_c, int D, float *out);
// out[c] = dot(x, C[c*D ..]) for c < n_c.
void dots1_f32(const float *x, const float *C, int n_c, int D, float *out);
// y[0..n) = f32(x) for f16 x.
void f16_to_f32_row(const uint16_t *x, float *y, int n);

// true: use the SIMD twins when available (default); false: the scalar references.
// Returns whether SIMD is in use after the call.
bool set_simd(bool on);
bool simd_available();

// The AVX2 twins (kernels_avx2.cpp); only called after a run-time CPU check.
namespace avx2 {
void dots_group_f16(const float *Q, int g, const uint16_t *k, int D, float *out);
void axpy_group_f16(const float *w, int g, const uint16_t *v, int D, float *acc);
void dots4_f32(const float *X, const float *C, int n_c, int D, float *out);
void dots1_f32(const float *x, const float *C, int n_c, int D, float *out);
void f16_to_f32_row(const uint16_t *x, float *y, int n);
}  // namespace avx2

}  // namespace tk
}  // namespace tactic
