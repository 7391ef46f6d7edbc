// Device-pointer entry points of the kernels, enqueued on a stream (so that the CUDA
// backend can capture a decode step in a graph). Shapes are checked by the caller.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda_backend.h"

namespace tactic {
namespace cuda {

// y[n_rows] = W x, W rows in their own type.
void matvec_dev(uint32_t type, const void *w, size_t row_bytes, int64_t n_rows, int64_t n_cols, const float *x,
                float *y, cudaStream_t stream);
// Decode matvec against 8-bit activations (matvec_q8.cu), quantized as the CPU path
// does: Q8_K blocks of 256 for the K-quants, Q8_0 / Q8_1 blocks of 32 for the others.
enum class Q8Kind { K, B0, B1 };
// q: int8 [n]; d: scale per block (Q8_K: f32; Q8_0/1: the f16 value); s: Q8_K: the sum of
// each 16 q (bsums); Q8_0: the sum of each block's q; Q8_1: f16(d * sum q). Sizes n,
// n / 32 + 1 and n / 16 + 1 cover every kind.
struct Q8Act {
    int8_t *q = nullptr;
    float *d = nullptr, *s = nullptr;
};
// The activation kind W's type multiplies against; false if it has none or n_cols does
// not fill whole blocks.
bool matvec_q8_kind(uint32_t type, int64_t n_cols, Q8Kind &kind);
void quantize_q8_dev(Q8Kind kind, const float *x, int64_t n, const Q8Act &a, cudaStream_t stream);
// y = x rounded as quantize_q8_dev would (d * q), in f16: prefill's GEMM input.
void quantize_q8_to_f16_dev(Q8Kind kind, const float *x, int64_t n, __half *y, cudaStream_t stream);
void matvec_q8_dev(uint32_t type, const void *w, size_t row_bytes, int64_t n_rows, int64_t n_cols, const Q8Act &a,
                   float *y, cudaStream_t stream);
// The v5 / v4 kernel (options().matvec_q8_kernel 5, the default, or 4; 3 = the earlier one) with
// an epilogue: Plain y = W0 x; Residual y = res + W0 x (res may be y); Silu / Gelu
// y = act(W0 x) * (W1 x), W1 of W0's type and shape (decode's gate and up).
enum class MvEpilogue { Plain, Residual, Silu, Gelu };
void matvec_q8_fused_dev(uint32_t type, const void *w0, const void *w1, size_t row_bytes, int64_t n_rows,
                         int64_t n_cols, const Q8Act &a, MvEpilogue epi, const float *res, float *y,
                         cudaStream_t stream);
// count (1-3) matrices of one type and width against the same x in one launch (v4, plain
// epilogue): y[j] = W[j] x, W[j] n_rows[j] rows of row_bytes.
void matvec_q8_multi_dev(uint32_t type, int count, const void *const *w, const int64_t *n_rows, float *const *y,
                         size_t row_bytes, int64_t n_cols, const Q8Act &a, cudaStream_t stream);
// Sizes the v4 grids (occupancy queries), outside any graph capture.
void matvec_q8_prepare();
// Decode fusion: y = RMSNorm(x) * w, one row of n, and y quantized to a (as
// rms_norm_dev + quantize_q8_dev, the same bytes).
void rms_norm_q8_dev(Q8Kind kind, const float *x, const float *w, int n, float eps, float *y, const Q8Act &a,
                     cudaStream_t stream);
// Decode fusion of a post-norm (Gemma): t = RMSNorm(t) * wt, x += t, then rms_norm_q8_dev
// on x (as rms_norm_dev + add_dev + rms_norm_q8_dev, the same bytes).
void add_norm_rms_norm_q8_dev(Q8Kind kind, float *t, const float *wt, float eps_t, float *x, const float *w, int n,
                              float eps, float *y, const Q8Act &a, cudaStream_t stream);
// dst[n_rows][n_cols] = W as f16.
void dequantize_f16_dev(uint32_t type, const void *w, size_t row_bytes, int64_t n_rows, int64_t n_cols, __half *dst,
                        cudaStream_t stream);
// dst[t][n_cols] = row rows[t] of W times scale, t < n.
void get_rows_dev(uint32_t type, const void *w, size_t row_bytes, int64_t n_cols, const int32_t *rows, int n,
                  float scale, float *dst, cudaStream_t stream);

void rms_norm_dev(const float *x, const float *w, int64_t n_rows, int n, float eps, float *y, cudaStream_t stream);

// q [n][H][D] rotated in place, times q_scale, rounded to f16; k [n][Hkv][D] rotated and
// with v [n][Hkv][D] written as f16 to the cache [Hkv][n_ctx][D] at positions pos[t].
// q_norm / k_norm (optional, D weights): each q / k head RMS-normed first (QK-norm, as
// rms_norm_dev with norm_eps would, same bytes).
struct QkvArgs {
    float *q = nullptr;
    const float *k = nullptr, *v = nullptr;
    int n_tokens = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ctx = 0;
    const int32_t *pos = nullptr;  // device [n_tokens]
    float q_scale = 1.f;
    __half *k_cache = nullptr, *v_cache = nullptr;
    const float *q_norm = nullptr, *k_norm = nullptr;
    float norm_eps = 0.f;
};
void rope_qkv_dev(const QkvArgs &a, const RopeArgs &rope, cudaStream_t stream);

// Decode attention of the token at position *d_pos over [max(0, pos+1-window), pos+1)
// (window 0: from 0), split n_splits ways along the keys. q is pre-scaled.
struct DecodeAttn {
    const float *q = nullptr;
    const __half *k = nullptr, *v = nullptr;  // this layer's cache [n_head_kv][n_ctx][D]
    int n_head = 0, n_head_kv = 0, head_dim = 0, n_ctx = 0;
    const int32_t *d_pos = nullptr;
    int window = 0, n_splits = 1;
    float *part_acc = nullptr, *part_ml = nullptr;  // [n_splits][n_head][D], [n_splits][n_head][2]
    float *out = nullptr;                           // [n_head][D]
    int32_t *done = nullptr;  // attn_kernel 2, 4, 29-31: n_head zeroed counters (left zero)
    uint64_t *probe = nullptr;  // bench only: per-block timer stamps (attention_decode_mma.cu, kProbe)
    int64_t max_len = 0;        // with d_pos: the longest range this launch (or graph) serves (attn_kernel 32)
    Q8Act q8{};                 // with q8_kind >= 0 (a Q8Kind): out also quantized here for the next matvec,
    int q8_kind = -1;           //   where the merge can (the functions below return whether it did)
};
int decode_attention_splits(int n_head, int n_head_kv, int head_dim, int64_t max_len);
bool attention_decode_dev(const DecodeAttn &a, cudaStream_t stream);
// The tensor-core split kernel (attention_decode_mma.cu, sm_80+): options().attn_kernel
// 1-11, 19, 20, 29-31 (2 and 4: the splits merged by each head's last block, where a.done is
// given; 29-31 claim 128-key tiles from a.done's counters).
// With a.d_pos null it attends [lo, lo + len) with q times scale.
bool decode_mma_supported(int head_dim);
bool use_decode_mma(int head_dim);
int decode_attention_mma_splits(int n_head, int n_head_kv, int head_dim, int64_t max_len);
bool attention_decode_mma_dev(const DecodeAttn &a, int lo, int len, float scale, cudaStream_t stream);

// Prefill attention of n_tokens queries at positions pos0.. over the cache (causal,
// windowed when window > 0), q [n][H][D] pre-scaled, out [n][H][D].
struct PrefillAttn {
    const float *q = nullptr;
    const __half *k = nullptr, *v = nullptr;
    int n_tokens = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ctx = 0, pos0 = 0, window = 0;
    float *out = nullptr;
};
void attention_prefill_dev(const PrefillAttn &a, cudaStream_t stream);
// The FlashAttention-2-style kernel (attention_prefill_fa2.cu; sm_80 and later only:
// prefill_fa2_supported() says whether the current device runs it).
void attention_prefill_fa2_dev(const PrefillAttn &a, cudaStream_t stream);
bool prefill_fa2_supported();

// Element-wise helpers.
void add_bias_dev(float *y, int ld, const float *bias, int width, int n, cudaStream_t stream);
void add_dev(float *x, const float *y, int64_t n, cudaStream_t stream);
void gated_act_dev(float *gate, const float *up, int64_t n, bool gelu, cudaStream_t stream);
void softcap_dev(float *x, int64_t n, float cap, cudaStream_t stream);
void to_f16_dev(const float *x, int64_t n, __half *y, cudaStream_t stream);

// cuBLAS, opened at run time (libcublas.so.13 / .12): null when it cannot be loaded.
class Cublas {
public:
    static Cublas *get();
    // C[n][m] (column-major m x n, ldc) = A^T B with A = k x m (lda), B = k x n (ldb), f16 in, f32 out.
    void gemm_tn(cudaStream_t stream, int m, int n, int k, const __half *A, int lda, const __half *B, int ldb,
                 float *C, int ldc);

private:
    Cublas() = default;
    void *handle_ = nullptr;
    void *lib_ = nullptr;
    void *set_stream_ = nullptr, *gemm_ex_ = nullptr;
};

}  // namespace cuda
}  // namespace tactic
