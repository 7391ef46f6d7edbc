// Scalar references of the Tactic kernels and the run-time choice of implementation.
#include "kernels.h"

#include <vector>

#include "../cpu_features.h"

#include "../common.h"
#include "../quant.h"

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
GroupScorer::GroupScorer(const float *Q, int g, int D) : Q_(Q), g_(g), D_(D) {
#if defined(TACTIC_X86)
    // the keys-in-lanes twin gives avx2::dots_group_f16's bytes, so only with the AVX2 path on
    if (g_use_simd && D % 16 == 0 && kernel_impl() == 3 && cpu_has_avx512_vnni()) {
        qr_.resize(size_t((g + 3) / 4) * D * 16);
        avx512::repeat_heads(Q, g, D, qr_.data());
    }
#endif
}

void GroupScorer::score(const uint16_t *keys, int n, float *out, int ostride) const {
#if defined(TACTIC_X86)
    if (!qr_.empty()) return avx512::dots_keys_f16(qr_.data(), g_, keys, n, D_, out, ostride);
#endif
    thread_local std::vector<float> s;
    s.resize(size_t(g_));
    for (int o = 0; o < n; o++) {
        dots_group_f16(Q_, g_, keys + size_t(o) * D_, D_, s.data());
        for (int h = 0; h < g_; h++) out[size_t(o) * ostride + h] = s[size_t(h)];
    }
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
