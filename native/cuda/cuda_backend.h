// The CUDA backend as plain C++: no CUDA type crosses this header, so the C ABI
// (api/api_cuda.cpp, built by the C++ compiler) can call it. Every function takes
// host buffers, copies them to GPU 0, runs one kernel and copies the result back;
// failures throw tactic::Error. Arguments are validated by the caller (api_cuda.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace tactic {
namespace cuda {

// Usable devices; 0 when there is no driver or no GPU (never throws).
int device_count();
std::string device_name(int device);

// Options (see tactic_cuda_set_option); false if the name is unknown.
bool set_option(const std::string &name, int64_t value);
double last_ms();
// The decode graph captured last: its kernel nodes and programmatic (PDL) edges.
void set_graph_stats(int64_t kernel_nodes, int64_t programmatic_edges);
void graph_stats(int64_t &kernel_nodes, int64_t &programmatic_edges);

// True for the types the kernels below handle.
bool type_supported(uint32_t type);

void dequantize(uint32_t type, const void *src, size_t row_bytes, int64_t n_rows, int64_t n_per_row,
                float *dst);
void matvec(uint32_t type, const void *w, size_t row_bytes, int64_t n_rows, int64_t n_cols, const float *x,
            float *y);
void rms_norm(const float *x, const float *w, int64_t n_rows, int n, float eps, float *y);
// The decode matvec on 8-bit activations with a fused epilogue (the v4 kernel): epi 0:
// y = W0 x; 1: y = res + W0 x; 2 / 3: y = silu / gelu(W0 x) * (W1 x). y holds the input
// of epi 1 (res = y).
void matvec_q8_epilogue(uint32_t type, const void *w0, const void *w1, size_t row_bytes, int64_t n_rows,
                        int64_t n_cols, const float *x, int epi, float *y);
// y = RMSNorm(x) * w (one row of n) and y quantized for `type`'s activations, in one
// kernel; q = the quantized bytes as d, s, q arrays are laid out in the kernel's buffers
// (returned as the dequantized values d * q, n floats).
void rms_norm_q8(uint32_t type, const float *x, const float *w, int n, float eps, float *y, float *xq);

struct RopeArgs {
    bool neox = false;
    int n_rot = 0;
    float base = 10000.f, freq_scale = 1.f, attn_factor = 1.f;
    const float *freq_factors = nullptr;  // [n_rot/2] or null
    bool yarn = false;
    int yarn_orig_ctx = 0;
};
void rope(float *x, int n_tokens, int n_head, int head_dim, const int32_t *pos, const RopeArgs &args);

// Decode attention (see tactic.h). idx == nullptr: tokens [lo, n); else per KV head g
// the tokens idx[offsets[g] .. offsets[g+1]).
struct AttentionArgs {
    const float *q = nullptr;
    int n_head = 0, n_head_kv = 0, head_dim = 0, n_ctx = 0;
    const uint16_t *k = nullptr, *v = nullptr;
    int lo = 0, n = 0;
    const int32_t *idx = nullptr;
    const int64_t *offsets = nullptr;
    float scale = 1.f;
    float *out = nullptr;
};
void attention(const AttentionArgs &a);

// Prefill attention as the forward pass runs it (attention_prefill_dev, the kernel
// options().prefill_mma picks): n_tokens queries q [n_tokens][n_head][head_dim]
// (pre-scaled) at positions pos0.., causal, windowed when window > 0, over the f16 cache
// k, v [n_head_kv][n_ctx][head_dim]; out like q.
struct PrefillAttnHost {
    const float *q = nullptr;
    const uint16_t *k = nullptr, *v = nullptr;
    int n_tokens = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ctx = 0, pos0 = 0, window = 0;
    float *out = nullptr;
};
void prefill_attention(const PrefillAttnHost &a);

}  // namespace cuda
}  // namespace tactic
