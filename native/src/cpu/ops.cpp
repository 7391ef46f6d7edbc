#include "ops.h"

#include <algorithm>
#include <cmath>

#include "../common.h"
#include "../cpu_features.h"
#include "../quant.h"

namespace tactic {

// AVX2 and AVX-512 versions, ops_avx2.cpp / ops_avx512.cpp (run when the kernel choice is
// AVX2 / AVX-512): whole vectors only, each returns the count done; the scalar loops below
// finish the rest.
int gated_activation_avx2(float *g, const float *u, int n, bool gelu);
int round_f16_avx2(float *x, int n, float scale, uint16_t *dst);
int to_f16_avx2(const float *x, int n, uint16_t *dst);
int gated_activation_avx512(float *g, const float *u, int n, bool gelu);
int round_f16_avx512(float *x, int n, float scale, uint16_t *dst);
int to_f16_avx512(const float *x, int n, uint16_t *dst);

void rms_norm(const float *x, const float *w, float *y, int n, float eps) {
    double ss = 0;  // ggml sums the squares in double
    for (int i = 0; i < n; i++) ss += double(x[i]) * double(x[i]);
    const float scale = 1.0f / std::sqrt(float(ss / n) + eps);
    if (w)
        for (int i = 0; i < n; i++) y[i] = x[i] * scale * w[i];
    else
        for (int i = 0; i < n; i++) y[i] = x[i] * scale;
}

void add_inplace(float *x, const float *y, int n) {
    for (int i = 0; i < n; i++) x[i] += y[i];
}

namespace {
float gelu_tanh(float x) {
    const float c = 0.79788456080286535588f;  // sqrt(2/pi)
    return 0.5f * x * (1.0f + std::tanh(c * x * (1.0f + 0.044715f * x * x)));
}
}  // namespace

void gated_activation(float *g, const float *u, int n, Activation act) {
    gated_activation_impl(kernel_impl(), g, u, n, act);
}

void gated_activation_impl(int impl, float *g, const float *u, int n, Activation act) {
    const bool gelu = act != Activation::Silu;
    int i = 0;
#if defined(TACTIC_X86)
    if (impl == 3) i = gated_activation_avx512(g, u, n, gelu);
    if (impl == 2) i = gated_activation_avx2(g, u, n, gelu);
#endif
    for (; i < n; i++) g[i] = (gelu ? gelu_tanh(g[i]) : g[i] / (1.0f + std::exp(-g[i]))) * u[i];
}

void round_to_f16(float *x, int n, float scale, uint16_t *dst) {
    round_to_f16_impl(kernel_impl(), x, n, scale, dst);
}

void round_to_f16_impl(int impl, float *x, int n, float scale, uint16_t *dst) {
    int i = 0;
#if defined(TACTIC_X86)
    if (impl == 3) i = round_f16_avx512(x, n, scale, dst);
    if (impl == 2) i = round_f16_avx2(x, n, scale, dst);
#endif
    for (; i < n; i++) {
        const uint16_t h = f32_to_f16(x[i] * scale);
        if (dst) dst[i] = h;
        x[i] = f16_to_f32(h);
    }
}

void store_f16(const float *x, int n, uint16_t *dst) { store_f16_impl(kernel_impl(), x, n, dst); }

void store_f16_impl(int impl, const float *x, int n, uint16_t *dst) {
    int i = 0;
#if defined(TACTIC_X86)
    if (impl == 3) i = to_f16_avx512(x, n, dst);
    if (impl == 2) i = to_f16_avx2(x, n, dst);
#endif
    for (; i < n; i++) dst[i] = f32_to_f16(x[i]);
}

void softcap(float *x, int n, float cap) {
    for (int i = 0; i < n; i++) x[i] = cap * std::tanh(x[i] / cap);
}

namespace {
// YaRN: the dimension range over which rotation is blended between interpolated
// and extrapolated frequencies (ggml_rope_yarn_corr_dims).
float yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
    return float(n_dims) * std::log(float(n_ctx_orig) / (n_rot * 2.0f * float(M_PI))) / (2.0f * std::log(base));
}
}  // namespace

void rope_cos_sin(const RopeConfig &c, int pos, float *cos_out, float *sin_out) {
    const int half = c.n_rot / 2;
    const float theta_scale = std::pow(c.base, -2.0f / float(c.n_rot));
    float low = 0, high = 0, mscale = c.attn_factor;
    if (c.yarn) {
        low = std::max(0.0f, std::floor(yarn_corr_dim(c.n_rot, c.yarn_orig_ctx, 32.0f, c.base)));
        high = std::min(float(c.n_rot - 1), std::ceil(yarn_corr_dim(c.n_rot, c.yarn_orig_ctx, 1.0f, c.base)));
        mscale *= 1.0f + 0.1f * std::log(1.0f / c.freq_scale);
    }
    float theta_base = float(pos);  // built by repeated multiplication, as ggml does
    for (int i = 0; i < half; i++) {
        float theta_extrap = theta_base;
        if (c.freq_factors) theta_extrap /= c.freq_factors[i];
        float theta = c.freq_scale * theta_extrap;
        if (c.yarn) {
            const float y = (float(i) - low) / std::max(0.001f, high - low);
            const float ramp = 1.0f - std::min(1.0f, std::max(0.0f, y));
            theta = theta * (1.0f - ramp) + theta_extrap * ramp;
        }
        cos_out[i] = std::cos(theta) * mscale;
        sin_out[i] = std::sin(theta) * mscale;
        theta_base *= theta_scale;
    }
}

void rope_apply(const RopeConfig &c, float *x, const float *cs, const float *sn) {
    const int half = c.n_rot / 2;
    if (c.type == RopeType::Neox) {
        for (int i = 0; i < half; i++) {
            const float x0 = x[i], x1 = x[i + half];
            x[i] = x0 * cs[i] - x1 * sn[i];
            x[i + half] = x0 * sn[i] + x1 * cs[i];
        }
    } else {
        for (int i = 0; i < half; i++) {
            const float x0 = x[2 * i], x1 = x[2 * i + 1];
            x[2 * i] = x0 * cs[i] - x1 * sn[i];
            x[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
        }
    }
}

}  // namespace tactic
