// Element-wise and row-wise operations of the transformer pass on the CPU.
#pragma once

#include <cstdint>

#include "../arch.h"

namespace tactic {

// y = x / sqrt(mean(x^2) + eps) * w (w may be null: no weight). y may alias x.
void rms_norm(const float *x, const float *w, float *y, int n, float eps);
void add_inplace(float *x, const float *y, int n);
// x = act(gate) * up, in place on gate.
void gated_activation(float *gate, const float *up, int n, Activation act);
// x[i] = f16(x[i] * scale) widened back to f32; dst (may be null) also gets the f16 bits.
void round_to_f16(float *x, int n, float scale, uint16_t *dst);
// dst[i] = f16(x[i]) (round to nearest even).
void store_f16(const float *x, int n, uint16_t *dst);
// The three above on kernel path impl (1 scalar, 2 AVX2, 3 AVX-512; the caller checked that
// this CPU has it), not the process's choice: for the test hook tactic_bench_elementwise.
void gated_activation_impl(int impl, float *gate, const float *up, int n, Activation act);
void round_to_f16_impl(int impl, float *x, int n, float scale, uint16_t *dst);
void store_f16_impl(int impl, const float *x, int n, uint16_t *dst);
// Softcap: x = cap * tanh(x / cap).
void softcap(float *x, int n, float cap);

// RoPE tables for one layer kind at one position: cos/sin of every pair.
struct RopeConfig {
    RopeType type = RopeType::Norm;
    int n_rot = 0;
    float base = 10000.f;
    float freq_scale = 1.f;
    const float *freq_factors = nullptr;  // [n_rot/2] divisors, or null
    bool yarn = false;
    float attn_factor = 1.f;
    int yarn_orig_ctx = 0;
};
void rope_cos_sin(const RopeConfig &cfg, int pos, float *cos_out, float *sin_out);
// Rotates one head vector x[head_dim] in place with the pair tables from rope_cos_sin.
void rope_apply(const RopeConfig &cfg, float *x, const float *cos_t, const float *sin_t);

}  // namespace tactic
