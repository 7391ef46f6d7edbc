// Scalar references of the Tactic kernels and the run-time choice of implementation.
#include "kernels.h"

#include "../cpu_features.h"

#include "../common.h"

namespace tactic {
namespace tk {
namespace scalar {

void dots_group_f16(const float *Q, int g, const uint16_t *k, int D, float *out) {
    for (int h = 0; h < g; h++) {
        float s = 0.f;
        for (int d = 0; d < D; d++) s += Q[size_t(h) * D + d] * f16_to_f32(k[d]);
        out[h] = s;
    }
}

void axpy_group_f16(const float *w, int g, const uint16_t *v, int D, float *acc) {
    for (int d = 0; d < D; d++) {
        const float x = f16_to_f32(v[d]);
        for (int h = 0; h < g; h++) acc[size_t(h) * D + d] += w[h] * x;
    }
}

void dots1_f32(const float *x, const float *C, int n_c, int D, float *out) {
    for (int c = 0; c < n_c; c++) {
        const float *cc = C + size_t(c) * D;
        float s = 0.f;
        for (int d = 0; d < D; d++) s += x[d] * cc[d];
        out[c] = s;
    }
}

void dots4_f32(const float *X, const float *C, int n_c, int D, float *out) {
    for (int r = 0; r < 4; r++) dots1_f32(X + size_t(r) * D, C, n_c, D, out + size_t(r) * n_c);
}

void f16_to_f32_row(const uint16_t *x, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] = f16_to_f32(x[i]);
}

}  // namespace scalar

namespace {

const bool g_avx2_available = cpu_has_avx2_fma_f16c();
bool g_use_simd = g_avx2_available;

}  // namespace

bool simd_available() { return g_avx2_available; }

bool set_simd(bool on) {
    g_use_simd = on && g_avx2_available;
    return g_use_simd;
}

#if defined(TACTIC_X86)
#define TACTIC_TK_DISPATCH(name, ...) \
    (g_use_simd ? avx2::name(__VA_ARGS__) : scalar::name(__VA_ARGS__))
#else
#define TACTIC_TK_DISPATCH(name, ...) scalar::name(__VA_ARGS__)
#endif

void dots_group_f16(const float *Q, int g, const uint16_t *k, int D, float *out) {
    TACTIC_TK_DISPATCH(dots_group_f16, Q, g, k, D, out);
}
void axpy_group_f16(const float *w, int g, const uint16_t *v, int D, float *acc) {
    TACTIC_TK_DISPATCH(axpy_group_f16, w, g, v, D, acc);
}
void dots4_f32(const float *X, const float *C, int n_c, int D, float *out) {
    TACTIC_TK_DISPATCH(dots4_f32, X, C, n_c, D, out);
}
void dots1_f32(const float *x, const float *C, int n_c, int D, float *out) {
    TACTIC_TK_DISPATCH(dots1_f32, x, C, n_c, D, out);
}
void f16_to_f32_row(const uint16_t *x, float *y, int n) { TACTIC_TK_DISPATCH(f16_to_f32_row, x, y, n); }

}  // namespace tk
}  // namespace tactic
