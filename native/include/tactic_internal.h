/* libtactic's internal hooks: test, benchmark and research entry points.
 *
 * Not for applications and without any stability promise: the kernels' entry points
 * (tactic_vec_dot, tactic_bench_*, tactic_cuda_* kernels), Tactic's research calls
 * (selector switching, debug evaluation, per-head statistics, timings). The
 * user-facing ABI is tactic.h, which this header includes. Installed beside it;
 * pytactic's cffi reads both (tests, scripts and pytactic.lowlevel use these).
 *
 * Same rules as tactic.h: plain C between the CDEF markers, TACTIC_API only.
 */
#ifndef TACTIC_INTERNAL_H
#define TACTIC_INTERNAL_H

#include "tactic.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CDEF BEGIN */

/* out = dot(w_row, x) as the runtime's matmul computes it (activation quantized to the
 * weight's vec_dot type). impl: 0 = best available, 1 = scalar, 2 = AVX2, 3 = AVX-512
 * (TACTIC_ERR_UNSUPPORTED if this CPU lacks it). */
TACTIC_API tactic_status tactic_vec_dot(int32_t type, const void *w, size_t w_size,
                                        const float *x, int64_t n, int32_t impl, float *out);
/* Benchmark and test hook (not for applications): y[t * rows + j] = the forward pass's
 * matmul of a rows x n weight matrix of `type` (rows back to back in w) with n_tokens
 * activation rows x[t * n ..], on n_threads threads (0 = all), impl as tactic_vec_dot
 * (3: the weights repacked first, as a model's are at load; 0 on an AVX-512 CPU: the same
 * tiles gathering the weights as stored). Runs n_iter times (at least once); *seconds (may be NULL) = mean time of one call. */
TACTIC_API tactic_status tactic_bench_matmul(int32_t type, const void *w, size_t w_size, int64_t rows,
                                             int64_t n, const float *x, int64_t n_tokens, float *y,
                                             int32_t impl, int32_t n_threads, int32_t n_iter,
                                             double *seconds);
/* Research knobs of the CPU decode matmuls (process-wide; for benchmarks): "decode_prefetch_bytes"
 * (software prefetch distance of the tiles, 0 = none), "decode_prefetch_hint" (0 T0, 1 T1,
 * 2 T2, 3 NTA), "huge_pages" (1: repacked weight copies ask for 2 MB pages; applies to
 * copies made afterwards), "attn_prefetch_l2" (1: decode attention prefetches K/V into L2). TACTIC_ERR_INVALID_ARGUMENT for an unknown name or value. */
TACTIC_API tactic_status tactic_cpu_set_option(const char *name, int64_t value);
/* Benchmark hook: the time of one streaming read of `bytes` bytes of a buffer this call
 * allocates as repacked weights are (weight_memory.h), split in n_threads contiguous
 * parts: the bandwidth ceiling the decode matmuls are measured against. */
TACTIC_API tactic_status tactic_bench_stream_read(size_t bytes, int32_t n_threads, int32_t n_iter,
                                                  double *seconds);
/* Test hook: the activation row x[n] quantized to weight_type's vec_dot type (Q8_0,
 * Q8_1, Q8_K, F16, ...), as matmul does it, by impl (as tactic_vec_dot). */
TACTIC_API tactic_status tactic_bench_quantize_activation(int32_t weight_type, const float *x, int64_t n,
                                                         int32_t impl, void *dst, size_t dst_size);
/* Test hook: the CPU forward pass's element-wise ops on kernel path impl (as tactic_vec_dot):
 * op 0: x = gelu_tanh(x) * u, 1: x = silu(x) * u (u: n floats), 2: x = f16(x * scale) widened
 * back and dst (may be NULL) the f16 bits, 3: dst = f16(x). */
TACTIC_API tactic_status tactic_bench_elementwise(int32_t op, float *x, const float *u, int64_t n, float scale,
                                                  uint16_t *dst, int32_t impl);
/* Test hook: causal prefill attention of n_tokens query tokens at positions pos0.. over
 * one KV head, as the forward pass runs it: K, V f16 [n_kv][head_dim] (n_kv >= pos0 +
 * n_tokens), q f32 [n_tokens][group][head_dim] (pre-scaled), window > 0: each token sees
 * its last `window` positions only. out like q. impl as tactic_vec_dot (3: AVX-512). */
TACTIC_API tactic_status tactic_bench_prefill_attention(const uint16_t *K, const uint16_t *V, int32_t n_kv,
                                                       const float *q, int32_t n_tokens, int32_t group,
                                                       int32_t head_dim, int32_t pos0, int32_t window,
                                                       int32_t impl, float *out);
/* Test and benchmark hook: the AVX-512 attention block kernel alone over keys [j_begin,
 * j_end) of one KV head (K, V f16 [n_kv][head_dim]): query rows q f32 [n_tokens][group]
 * [head_dim] (pre-scaled), token t masked to positions [lo[t], hi[t]). layout: 1 = query
 * rows in the vector lanes, 2 = keys in the lanes (n_tokens * group <= 8), 0 = the
 * kernel's own choice. m, l [n_tokens * group] and acc [n_tokens * group][head_dim]: the
 * unnormalised partial softmax. n_iter > 1 repeats the call (timing); *seconds (may be
 * NULL) = mean thread CPU seconds a call. TACTIC_ERR_UNSUPPORTED without AVX-512. */
TACTIC_API tactic_status tactic_bench_attention_block(const uint16_t *K, const uint16_t *V, int32_t n_kv,
                                                     const float *q, int32_t n_tokens, int32_t group,
                                                     int32_t head_dim, const int32_t *lo, const int32_t *hi,
                                                     int32_t j_begin, int32_t j_end, int32_t layout,
                                                     int32_t n_iter, float *m, float *l, float *acc,
                                                     double *seconds);

/* ---- Tactic statistics --------------------------------------------------- */
typedef struct {
    int32_t layer;
    int32_t head;         /* query head */
    int32_t n_tokens;     /* tokens in the cache for this layer */
    int32_t n_selected;   /* tokens this head selected */
    int32_t n_attended;   /* tokens attended for the head's KV group (union + always-kept) */
    float est_mass;       /* Tactic's estimated share of the mass of its selection */
    float true_mass;      /* the true share (debug mode only, else -1) */
    int32_t n_scored;     /* tokens the KV group scored exactly (bounded selector) */
    int32_t oracle_tokens; /* debug mode: the fewest tokens reaching p (else -1) */
    int32_t oracle_union; /* debug mode: union of the group's oracle sets (else -1) */
    float est_over_true_total; /* debug mode, bounded selector: estimated / true total mass */
} tactic_head_stats;

/* Per-head statistics of the last decode step (global layers only). If cap is too
 * small, *n_out is the count needed. */
TACTIC_API tactic_status tactic_get_head_stats(tactic_context *ctx, tactic_head_stats *out,
                                               int32_t cap, int32_t *n_out);

/* Switch the selector and target p of a context's Tactic attention for the following
 * decode steps (clusters are kept). The context must not use attention = FULL. */
TACTIC_API tactic_status tactic_set_selection(tactic_context *ctx, int32_t selector, float p);
/* Switch debug mode (true masses, tactic_get_head_eval) on or off for the following steps. */
TACTIC_API tactic_status tactic_set_debug(tactic_context *ctx, int32_t on);
/* Perturbation control for evaluations: the queries of the following Tactic decode steps
 * (every selector, FULL included) get Gaussian noise, per element sigma times the query
 * row's RMS, seeded by (seed, layer, length); sigma = 0 turns it off. sigma in [0, 1]. */
TACTIC_API tactic_status tactic_set_debug_noise(tactic_context *ctx, float sigma, uint64_t seed);
/* Bounded selector options for the following decode steps (evaluations; defaults 0.1, 1):
 * keep p + margin * (1 - p) of the estimated total mass (margin in [0, 1]); tail_values != 0:
 * estimate the unattended tokens' share of the output from cluster value means. */
TACTIC_API tactic_status tactic_set_bounded_options(tactic_context *ctx, float margin, int32_t tail_values);

/* Debug mode (tactic_debug = 1) only: Tactic and the baselines evaluated at the targets
 * p = 0.5, 0.7, 0.8, 0.9, 0.95 on the last decode step, one entry per (global layer,
 * query head, p). Masses are true shares of the head's softmax mass. */
typedef struct {
    int32_t layer;
    int32_t head;
    int32_t n_tokens;
    float p;
    int32_t tactic_tokens;      /* Tactic's own selection (always-kept tokens included) */
    float tactic_est_mass;
    float tactic_true_mass;
    int32_t oracle_tokens;      /* the fewest tokens whose true mass reaches p */
    int32_t cluster_opt_tokens; /* always-kept + shortest cluster-order prefix reaching p */
    float quest_true_mass;      /* Quest with tactic_tokens tokens */
    int32_t union_tokens;       /* union of Tactic's selections over the KV group */
    float union_true_mass;      /* this head's true mass over that union */
    int32_t degenerate;         /* the distribution fit fell back to a flat tail */
    int32_t prune_tokens;       /* TACTIC_PRUNE at p: tokens kept ... */
    int32_t prune_candidates;   /* ... out of this many scored exactly */
    float prune_est_mass;
    float prune_true_mass;
} tactic_head_eval;
TACTIC_API tactic_status tactic_get_head_eval(tactic_context *ctx, tactic_head_eval *out, int32_t cap,
                                              int32_t *n_out);

/* Debug mode (tactic_debug = 1) only: global layer `layer`, query head `head`, on the last
 * decode step; per cached token t < *n_out: w[t] = its true softmax weight for the head,
 * flags[t] = 1 (kept by this head) | 2 (attended by its KV group) | 4 (scored exactly by
 * the bounded selector), crank[t] = the rank of t's cluster in the head's centroid-score
 * order (-1: sink, recent or not yet clustered; bounded selector only). Any of w, flags,
 * crank may be NULL. *n_out = 0 when that step was not recorded; cap too small: an error,
 * *n_out = the tokens needed. */
TACTIC_API tactic_status tactic_get_head_tokens(tactic_context *ctx, int32_t layer, int32_t head, float *w,
                                                uint8_t *flags, int32_t *crank, int32_t cap, int32_t *n_out);

/* Benchmark of decode attention alone on caller-given data: K, V f16 [n_head_kv][n_tokens]
 * [head_dim], q f32 [n_head][head_dim] (pre-scaled). selector: TACTIC_SELECT_* through
 * TacticAttention (clustering is done by an untimed first call and reported in
 * out[2]), or -1 for the forward pass's own full-attention kernel.  out[0] = seconds per
 * call (median over n_iter calls; thread CPU time when n_threads = 1), out[1] = mean tokens attended per KV head, out[2] = clustering seconds. */
TACTIC_API tactic_status tactic_bench_attention(const uint16_t *K, const uint16_t *V, const float *q,
                                                int32_t n_tokens, int32_t head_dim, int32_t n_head,
                                                int32_t n_head_kv, int32_t selector, float p,
                                                int32_t n_threads, int32_t n_iter, double *out);

/* Test hook: Tactic's candidate scores out[o][h] = q_h . k_o of g query heads Q f32 [g]
 * [head_dim] against n f16 keys [n][head_dim], by the AVX2 kernel key by key (impl 2) or
 * the AVX-512 keys-in-lanes kernel (impl 3; head_dim % 16 == 0). TACTIC_ERR_UNSUPPORTED
 * when this CPU lacks the instructions. */
TACTIC_API tactic_status tactic_bench_tactic_dots(const float *Q, int32_t g, const uint16_t *keys, int32_t n,
                                                 int32_t head_dim, int32_t impl, float *out);

/* ---- CUDA kernels ---- */
/* The CUDA backend's kernels, exposed for tests and benchmarks. Each call copies its
 * inputs to GPU 0, runs the kernel, and copies the result back. A library built
 * without CUDA returns TACTIC_ERR_UNSUPPORTED from every call, and so does one that
 * finds no usable GPU or driver (tactic_cuda_device_count, in tactic.h, says 0). */
/* Tuning and benchmark options: "bench_iters" (> 0: every call below also times its
 * kernel over that many launches, rotating among copies of its largest input so that
 * repeats do not run from L2; read the median with tactic_cuda_last_ms),
 * "matvec_version" (1 or 2: f32 activations; 3: x quantized to 8-bit blocks as the CPU
 * does, then dp4a, the decode path of the quantized types; 0 = default), "matvec_rows" (rows per warp: 1, 2, 4 or 8;
 * 0 = default), "attn_splits" (splits of the token range per KV head; 0 = automatic),
 * "attn_prefetch" (1: L2 prefetch of upcoming K/V rows; 0 = default, off), "bench_graph"
 * (1: the timed launches of the range attention replay from a CUDA graph), "attn_kernel"
 * (decode attention over a token range: 1 = the tensor-core split kernel, sm_80+ (older GPUs
 * run 0); 0 = the FMA split kernel; 2 = kernel 1 with the splits merged by each head's last
 * block instead of a second kernel; 3-11, 19, 20, 29-31 = its variants (attention_decode_mma.cu,
 * kVariants; 12-18 and 21-28 were removed after measurement and are rejected),
 * 8: K/V rows copied by TMA bulk copies on sm_90 (cp.async below) and a merge kernel with its
 * loads in flight; 20 = default: 128-key K and V tiles copied one after the other by TMA
 * tensor copies (head_dim 128 on sm_90; kernel 8 otherwise); index lists always use 0), "prefill_mma"
 * (prefill attention: 0 FMA, 1 WMMA, 2 mma.sync, the default), "prefill_rows" (query rows
 * a block of the mma.sync kernel: 64 or 128; 0 = default),
 * "matvec_q8_kernel" (the 8-bit-activation matvec: 4 = each warp's copies
 * pipelined across its rows; 3 = the earlier kernel; with it "matvec_rows" 2 selects two
 * stages, with 4 "matvec_rows" 4 selects four; 5 = default, Q4_K/Q5_K weights loaded straight into
 * registers, the other formats through v4's tiles, two rows a warp on one activation load,
 * for 16-byte aligned matrices (others: 4), "matvec_rows" 1 or 4 (Q4_K/Q5_K) rows a warp
 * instead), "matvec_wait" (v5 Q4_K/Q5_K: 1 = default, the first chunk of weights
 * loaded with coherent loads, issued before pdl_wait; 0 = with ld.global.nc, which ptxas
 * schedules after the wait), "decode_fuse" (2 = default: the decode step fuses RMSNorm +
 * activation quantization, residual adds and the gated activation into neighbouring
 * kernels, and runs wq, wk, wv of one type in one launch; 1: not the latter; 0: separate
 * kernels), "norm_fuse" (with decode_fuse, 1 = default: QK-norm inside RoPE + KV store,
 * a post-norm + its residual add + the next pre-norm in one kernel; 0: separate), "pdl"
 * (1 = default: the decode kernels launch with programmatic dependent launch on compute
 * capability 9.0+, each overlapping its start with the previous kernel's end; 0: plain
 * launches). */
TACTIC_API tactic_status tactic_cuda_set_option(const char *name, int64_t value);
/* Milliseconds per launch of the last timed kernel (median), or -1. */
TACTIC_API double tactic_cuda_last_ms(void);
/* The decode graph (CUDA backend) captured last in this process: its kernel nodes (the
 * launches of a decode step) and its programmatic-dependency edges (option "pdl"), or
 * -1 each before any capture (-1 edges also where the runtime cannot count them). */
TACTIC_API tactic_status tactic_cuda_graph_stats(int64_t *kernel_nodes, int64_t *programmatic_edges);
/* A trace build's (cmake -DTACTIC_STEP_TRACE=ON) per-block phase timestamps (global timer, ns)
 * of the last launch of the fused Tactic step kernel and of the centroid scores, 1024 blocks
 * x 24 marks each (native/cuda/step_trace.cuh; zero where not written); unsupported elsewhere. */
TACTIC_API tactic_status tactic_cuda_step_trace(uint64_t *fused, uint64_t *score);
/* dst[n_rows][n_per_row] = dequantize(src), rows of tactic_type_row_size bytes. */
TACTIC_API tactic_status tactic_cuda_dequantize(int32_t type, const void *src, size_t src_size,
                                                int64_t n_rows, int64_t n_per_row, float *dst);
/* y[n_rows] = W x: W rows in their own type, x f32, f32 accumulation. */
TACTIC_API tactic_status tactic_cuda_matvec(int32_t type, const void *w, size_t w_size,
                                            int64_t n_rows, int64_t n_cols, const float *x,
                                            float *y);
/* The decode matvec on 8-bit activations (the v5 / v4 kernel) with its fused epilogue: epi 0
 * y = W0 x; 1: y += W0 x (y holds the residual on entry); 2 / 3: y = silu / gelu-tanh(W0 x)
 * * (W1 x), W1 of W0's type and size (w_size bytes each). Options "matvec_q8_kernel" (3:
 * the earlier kernel, 4: v4, 5: the default) and "decode_fuse" (0: decode runs unfused) pick what
 * the decode step runs. */
TACTIC_API tactic_status tactic_cuda_matvec_q8_epilogue(int32_t type, const void *w0, const void *w1,
                                                        size_t w_size, int64_t n_rows, int64_t n_cols,
                                                        const float *x, int32_t epi, float *y);
/* Decode's fused RMSNorm + activation quantization (one row of n): y as tactic_cuda_rms_norm,
 * xq[i] = d * q of y quantized for weights of `type` (Q8_K / Q8_0 / Q8_1 blocks). */
TACTIC_API tactic_status tactic_cuda_rms_norm_q8(int32_t type, const float *x, const float *w, int32_t n,
                                                 float eps, float *y, float *xq);
/* y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w (w may be NULL), n_rows rows of n. */
TACTIC_API tactic_status tactic_cuda_rms_norm(const float *x, const float *w, int64_t n_rows,
                                              int32_t n, float eps, float *y);
typedef struct {
    int32_t neox;              /* 1: rotate pairs (i, i + n_rot/2); 0: pairs (2i, 2i+1) */
    int32_t n_rot;             /* rotated dimensions (even, <= head_dim) */
    float base;
    float freq_scale;
    const float *freq_factors; /* [n_rot/2] divisors of the frequencies, or NULL */
    int32_t yarn;              /* 1: YaRN blend with yarn_orig_ctx */
    float attn_factor;
    int32_t yarn_orig_ctx;
} tactic_cuda_rope_params;
/* Rotates x[n_tokens][n_head][head_dim] in place, token t at position pos[t]. */
TACTIC_API tactic_status tactic_cuda_rope(float *x, int32_t n_tokens, int32_t n_head,
                                          int32_t head_dim, const int32_t *pos,
                                          const tactic_cuda_rope_params *params);
/* Decode attention of one token: out[n_head][head_dim] = softmax(scale q.K) V over the
 * tokens [lo, n) of an f16 cache laid out [n_head_kv][n_ctx][head_dim] (GQA: query
 * head h reads KV head h / (n_head / n_head_kv)). head_dim: 64, 128 or 256. */
TACTIC_API tactic_status tactic_cuda_attention(const float *q, int32_t n_head, int32_t n_head_kv,
                                               int32_t head_dim, const uint16_t *k,
                                               const uint16_t *v, int32_t n_ctx, int32_t lo,
                                               int32_t n, float scale, float *out);
/* The same over selected tokens: KV head g attends the tokens
 * idx[offsets[g] .. offsets[g+1]) (lists may differ in length; each index < n_ctx). */
TACTIC_API tactic_status tactic_cuda_attention_indexed(const float *q, int32_t n_head,
                                                       int32_t n_head_kv, int32_t head_dim,
                                                       const uint16_t *k, const uint16_t *v,
                                                       int32_t n_ctx, const int32_t *idx,
                                                       const int64_t *offsets, float scale,
                                                       float *out);

/* Prefill attention as the CUDA forward pass runs it: n_tokens query tokens at positions
 * pos0.. (q f32 [n_tokens][n_head][head_dim], pre-scaled), causal, and with window > 0
 * each token sees its last `window` positions only, over an f16 cache k, v
 * [n_head_kv][n_ctx][head_dim] (pos0 + n_tokens <= n_ctx; keys past pos0 + n_tokens - 1
 * are never read). out like q. The kernel is the option "prefill_mma": 0 FMA, 1 WMMA
 * tensor cores, 2 mma.sync FlashAttention-2 style (the default; sm_80 and later, else 1).
 * Timed with "bench_iters" as the calls above. head_dim: 64, 128 or 256. */
TACTIC_API tactic_status tactic_cuda_prefill_attention(const float *q, int32_t n_tokens, int32_t n_head,
                                                       int32_t n_head_kv, int32_t head_dim, const uint16_t *k,
                                                       const uint16_t *v, int32_t n_ctx, int32_t pos0,
                                                       int32_t window, float *out);

/* Tactic's decode step for one global layer on the GPU (native/cuda/tactic_gpu.cu),
 * run once from a CUDA graph. The clustered range [c_begin, c_end) of each KV head is
 * given as clusters: order[g] lists its positions cluster by cluster, cluster c of KV
 * head g is order[g][offsets[g][c] .. offsets[g][c+1]), centroids[g][c] its centroid
 * (kept as f16 on the GPU). Per query head the clusters are taken in decreasing
 * q . centroid (ties: lower index) until they hold ceil(force_fraction n_tokens)
 * tokens, or, with force_fraction 0, until their centroid mass sum |c| exp(scale q.c)
 * reaches 1 - (1 - p) / 4 of its total and they hold at least 64 tokens (the CPU's
 * bounded selector's first prefix); each KV head attends the union of its query
 * heads' clusters plus every token outside the range. out[n_head][head_dim] = that attention; selected[g][0 ..
 * n_selected[g]) the positions KV head g attended. stage_ms (NULL, or [7]): with
 * bench_iters > 0, milliseconds per step of the centroid scores, the per-head cut, the
 * GQA union list, the sparse attention, the merge and the whole step, each replayed
 * from a CUDA graph over rotating copies of the layer (stage_ms[6] = copies; options
 * "tactic_copies" and "tactic_blocks" fix the copies and the attention blocks;
 * "tactic_fused" 1, the default: the attention kernel merges the heads itself and the
 * merge stage is empty; 0: the earlier attention kernel and a separate merge). */
typedef struct {
    int32_t n_head, n_head_kv, head_dim, n_ctx;
    int32_t n_tokens;      /* cached tokens, the new one included (1 .. n_ctx) */
    int32_t c_begin, c_end;
    int32_t max_clusters;  /* row length of offsets minus 1, and of centroids */
    float force_fraction;  /* (0, 1], or 0: the mass target p decides */
    float p;               /* (0, 1] */
    float scale;           /* softmax scale */
} tactic_cuda_tactic_shape;
TACTIC_API tactic_status tactic_cuda_tactic_step(const tactic_cuda_tactic_shape *shape, const float *q,
                                                 const uint16_t *k, const uint16_t *v,
                                                 const int32_t *order, const int32_t *offsets,
                                                 const int32_t *n_clusters, const float *centroids,
                                                 float *out, int32_t *selected, int32_t *n_selected,
                                                 double *stage_ms);

/* CDEF END */

#ifdef __cplusplus
}
#endif

#endif /* TACTIC_INTERNAL_H */
