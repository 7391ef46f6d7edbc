/* libtactic: the one public header of the pytactic native runtime.
 *
 * A C ABI of opaque handles, status codes and a per-thread last-error message.
 * No C++ exception or abort crosses it. Parameter structs come with a
 * tactic_*_default_params() function so fields can be added without breaking
 * callers.
 *
 * pytactic reads this file with cffi: keep every declaration between the
 * CDEF markers plain C (no macros other than TACTIC_API, which is stripped).
 */
#ifndef TACTIC_H
#define TACTIC_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define TACTIC_API __declspec(dllexport)
#else
#define TACTIC_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* CDEF BEGIN */

typedef enum {
    TACTIC_OK = 0,
    TACTIC_ERR_INVALID_ARGUMENT = 1, /* a wrong argument (range, null, ...) */
    TACTIC_ERR_IO = 2,               /* the file cannot be opened or read */
    TACTIC_ERR_FORMAT = 3,           /* the file is not a valid GGUF / is corrupt */
    TACTIC_ERR_UNSUPPORTED = 4,      /* valid, but not supported (architecture, type) */
    TACTIC_ERR_OUT_OF_MEMORY = 5,    /* refused before allocating, or allocation failed */
    TACTIC_ERR_CONTEXT_FULL = 6,     /* tokens would not fit in n_ctx */
    TACTIC_ERR_CANCELLED = 7,        /* tactic_cancel() stopped the call */
    TACTIC_ERR_BUSY = 8,             /* the handle is in use by another thread */
    TACTIC_ERR_INTERNAL = 9          /* a bug: please report */
} tactic_status;

/* The message of the last failed call on this thread ("" if none). */
TACTIC_API const char *tactic_last_error(void);
TACTIC_API const char *tactic_version(void);
/* A short description of the build: SIMD paths compiled in, used at run time, CUDA. */
TACTIC_API const char *tactic_build_info(void);

/* ---- tensor types (ggml type ids) ------------------------------------- */
enum {
    TACTIC_TYPE_F32 = 0, TACTIC_TYPE_F16 = 1, TACTIC_TYPE_Q4_0 = 2, TACTIC_TYPE_Q4_1 = 3,
    TACTIC_TYPE_Q5_0 = 6, TACTIC_TYPE_Q5_1 = 7, TACTIC_TYPE_Q8_0 = 8, TACTIC_TYPE_Q8_1 = 9,
    TACTIC_TYPE_Q2_K = 10, TACTIC_TYPE_Q3_K = 11, TACTIC_TYPE_Q4_K = 12, TACTIC_TYPE_Q5_K = 13,
    TACTIC_TYPE_Q6_K = 14, TACTIC_TYPE_Q8_K = 15, TACTIC_TYPE_BF16 = 30
};

/* Bytes taken by n elements of `type` (n a multiple of the block size), 0 if unknown. */
TACTIC_API size_t tactic_type_row_size(int32_t type, int64_t n);
TACTIC_API int32_t tactic_type_block_size(int32_t type);
/* dst[n] = dequantize(src). src_size guards the read. */
TACTIC_API tactic_status tactic_dequantize(int32_t type, const void *src, size_t src_size,
                                           int64_t n, float *dst);
/* Quantize n_rows rows of n_per_row floats into dst (the runtime's own quantizer,
 * K-quants included). dst_size guards the write. */
TACTIC_API tactic_status tactic_quantize(int32_t type, const float *src, int64_t n_rows,
                                         int64_t n_per_row, void *dst, size_t dst_size);
/* out = dot(w_row, x) as the runtime's matmul computes it (activation quantized to the
 * weight's vec_dot type). impl: 0 = best available, 1 = scalar, 2 = SIMD (error if absent). */
TACTIC_API tactic_status tactic_vec_dot(int32_t type, const void *w, size_t w_size,
                                        const float *x, int64_t n, int32_t impl, float *out);
/* Benchmark and test hook (not for applications): y[t * rows + j] = the forward pass's
 * matmul of a rows x n weight matrix of `type` (rows back to back in w) with n_tokens
 * activation rows x[t * n ..], on n_threads threads (0 = all), impl as tactic_vec_dot.
 * Runs n_iter times (at least once); *seconds (may be NULL) = mean time of one call. */
TACTIC_API tactic_status tactic_bench_matmul(int32_t type, const void *w, size_t w_size, int64_t rows,
                                             int64_t n, const float *x, int64_t n_tokens, float *y,
                                             int32_t impl, int32_t n_threads, int32_t n_iter,
                                             double *seconds);
/* Test hook: the activation row x[n] quantized to weight_type's vec_dot type (Q8_0,
 * Q8_1, Q8_K, F16, ...), as matmul does it, by impl (1 scalar, 2 SIMD). */
TACTIC_API tactic_status tactic_bench_quantize_activation(int32_t weight_type, const float *x, int64_t n,
                                                         int32_t impl, void *dst, size_t dst_size);

/* ---- GGUF inspection --------------------------------------------------- */
/* Parse and validate a GGUF file without building a model. */
typedef struct tactic_gguf tactic_gguf;
TACTIC_API tactic_status tactic_gguf_open(const char *path, tactic_gguf **out);
TACTIC_API void tactic_gguf_free(tactic_gguf *g);
TACTIC_API int64_t tactic_gguf_n_tensors(const tactic_gguf *g);
TACTIC_API int64_t tactic_gguf_n_kv(const tactic_gguf *g);
TACTIC_API uint32_t tactic_gguf_version(const tactic_gguf *g);

/* ---- model ------------------------------------------------------------ */
typedef struct tactic_model tactic_model;

typedef struct {
    int32_t use_mmap;  /* 1: map the file (default); 0: read it into memory */
    int32_t n_threads; /* threads used while loading (repacking); 0 = default */
    int32_t n_gpu_layers; /* reserved: 0 = CPU only */
    int32_t vocab_only;   /* 1: load the tokenizer only (no architecture or weights needed) */
} tactic_model_params;

typedef struct {
    char architecture[32];
    int32_t n_vocab;
    int32_t n_ctx_train;
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;
    int32_t n_ff;
    int64_t n_params;
    int64_t size_bytes; /* bytes of tensor data */
} tactic_model_info;

TACTIC_API tactic_model_params tactic_model_default_params(void);
TACTIC_API tactic_status tactic_model_load(const char *path, const tactic_model_params *params,
                                           tactic_model **out);
/* Contexts keep their model alive: the memory goes when the model and all its
 * contexts are freed, in any order. */
TACTIC_API void tactic_model_free(tactic_model *model);
TACTIC_API tactic_status tactic_model_get_info(const tactic_model *model, tactic_model_info *out);
/* A metadata value rendered as a string (strings verbatim, numbers in decimal).
 * *out points into the model and lives as long as it. TACTIC_ERR_INVALID_ARGUMENT if absent. */
TACTIC_API tactic_status tactic_model_meta_str(const tactic_model *model, const char *key,
                                               const char **out);
/* Which layers are global (full attention); 1 byte per layer written to out[n_layer]. */
TACTIC_API tactic_status tactic_model_global_layers(const tactic_model *model, uint8_t *out,
                                                    int32_t n_layer);

/* ---- tokenizer (part of the model) ------------------------------------- */
/* Tokenize len bytes of UTF-8 text. add_special: add BOS/EOS as the GGUF says.
 * parse_special: recognise control-token texts in `text`. If cap is too small,
 * *n_out is the count needed and TACTIC_ERR_INVALID_ARGUMENT is returned. */
TACTIC_API tactic_status tactic_tokenize(const tactic_model *model, const char *text, size_t len,
                                         int32_t add_special, int32_t parse_special,
                                         int32_t *out, int32_t cap, int32_t *n_out);
/* The bytes of one token (not NUL-terminated; may be a partial UTF-8 character).
 * special: render control tokens' text instead of "". *n_out = bytes needed. */
TACTIC_API tactic_status tactic_token_to_piece(const tactic_model *model, int32_t token,
                                               int32_t special, char *buf, int32_t cap,
                                               int32_t *n_out);
/* Detokenize a whole sequence (applies clean-up rules such as BPE clean_spaces). */
TACTIC_API tactic_status tactic_detokenize(const tactic_model *model, const int32_t *tokens,
                                           int32_t n_tokens, int32_t special, char *buf,
                                           int32_t cap, int32_t *n_out);
TACTIC_API int32_t tactic_token_bos(const tactic_model *model); /* -1 if none */
TACTIC_API int32_t tactic_token_eos(const tactic_model *model); /* -1 if none */
TACTIC_API int32_t tactic_token_is_eog(const tactic_model *model, int32_t token);
TACTIC_API int32_t tactic_vocab_add_bos(const tactic_model *model);
TACTIC_API int32_t tactic_vocab_add_eos(const tactic_model *model);

/* ---- context (KV cache + evaluation) ----------------------------------- */
typedef struct tactic_context tactic_context;

enum { TACTIC_ATTN_AUTO = 0, TACTIC_ATTN_FULL = 1, TACTIC_ATTN_TACTIC = 2 };

typedef struct {
    int32_t n_ctx;              /* 0 = the model's training context */
    int32_t n_threads;          /* 0 = number of cores */
    int32_t n_batch;            /* tokens per prefill chunk; 0 = default (512) */
    int32_t attention;          /* TACTIC_ATTN_*; AUTO = Tactic once the context is long */
    int32_t tactic_min_ctx;     /* AUTO switches to Tactic past this many cached tokens */
    float tactic_p;             /* target share of the attention mass, (0, 1] */
    int32_t cluster_size;       /* average K-means cluster size */
    int32_t recluster_interval; /* decode steps between re-clusterings; 0 = default */
    int32_t n_sink;             /* leading tokens always attended */
    int32_t n_recent;           /* trailing tokens always attended */
    int32_t tactic_debug;       /* 1: also compute full attention to report true mass */
    uint64_t seed;              /* K-means initialisation */
    /* added by the Tactic work (additive) */
    int32_t tactic_selector;    /* TACTIC_SELECT_*: Tactic (default) or a baseline for comparisons */
    int32_t tactic_incremental; /* 1: tokens leaving the recent window join their nearest cluster */
    int32_t tactic_block_size;  /* new tokens are clustered in blocks of this many (default 256);
                                   0: the older whole-cache re-clustering (recluster_interval) */
    float tactic_force_fraction; /* (0, 1]: keep exactly this share of the cached tokens per
                                    query head (benchmarks on random-weight models); 0 = off */
} tactic_context_params;

TACTIC_API tactic_context_params tactic_context_default_params(void);
TACTIC_API tactic_status tactic_context_new(tactic_model *model, const tactic_context_params *params,
                                            tactic_context **out);
/* Cancels and waits for a tactic_eval still running on another thread, then frees. */
TACTIC_API void tactic_context_free(tactic_context *ctx);
TACTIC_API int32_t tactic_context_n_ctx(const tactic_context *ctx);
/* Tokens currently in the cache. */
TACTIC_API int32_t tactic_context_n_past(const tactic_context *ctx);
/* Drop cached tokens from position n_keep on (n_keep <= n_past). */
TACTIC_API tactic_status tactic_context_truncate(tactic_context *ctx, int32_t n_keep);
/* Evaluate n tokens after the cached ones. logits_all: keep logits of every
 * position, else of the last only. TACTIC_ERR_CONTEXT_FULL if they do not fit. */
TACTIC_API tactic_status tactic_eval(tactic_context *ctx, const int32_t *tokens, int32_t n,
                                     int32_t logits_all);
/* Logits of row i of the last tactic_eval (i = -1: the last row). Valid until the
 * next eval. */
TACTIC_API const float *tactic_get_logits(tactic_context *ctx, int32_t i);
TACTIC_API int32_t tactic_get_n_logits_rows(const tactic_context *ctx);
/* Ask a running tactic_eval on this context to stop (thread-safe, async-signal-safe). */
TACTIC_API void tactic_cancel(tactic_context *ctx);

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
/* Which tokens Tactic-mode decode attends. TACTIC and CLUSTER_OPT keep the n_sink first
 * tokens and every token not yet clustered; ORACLE (exact top-p by true scores) and QUEST
 * (pages of 16 ranked by their min/max bound, as many tokens per query head as Tactic
 * chose) select among all tokens; FULL attends everything through the same path. */
enum {
    TACTIC_SELECT_TACTIC = 0, TACTIC_SELECT_ORACLE = 1, TACTIC_SELECT_QUEST = 2,
    TACTIC_SELECT_CLUSTER_OPT = 3, TACTIC_SELECT_FULL = 4,
    /* our extension: Tactic's cluster prefix for a stricter target proposes candidates,
     * their exact scores decide (kept by score until the estimated share reaches p) */
    TACTIC_SELECT_TACTIC_PRUNE = 5,
    /* the default: cluster candidates scored exactly, an upper bound on the unscored tail,
     * tokens kept by exact score until p of (exact + bound) (docs/TACTIC.md) */
    TACTIC_SELECT_BOUNDED = 6
};
/* Switch the selector and target p of a context's Tactic attention for the following
 * decode steps (clusters are kept). The context must not use attention = FULL. */
TACTIC_API tactic_status tactic_set_selection(tactic_context *ctx, int32_t selector, float p);
/* Switch debug mode (true masses, tactic_get_head_eval) on or off for the following steps. */
TACTIC_API tactic_status tactic_set_debug(tactic_context *ctx, int32_t on);

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

/* Benchmark of decode attention alone on caller-given data: K, V f16 [n_head_kv][n_tokens]
 * [head_dim], q f32 [n_head][head_dim] (pre-scaled). selector: TACTIC_SELECT_* through
 * TacticAttention (clustering is done by an untimed first call and reported in
 * out[2]), or -1 for the forward pass's own full-attention kernel.  out[0] = seconds per
 * call (median over n_iter calls; thread CPU time when n_threads = 1), out[1] = mean tokens attended per KV head, out[2] = clustering seconds. */
TACTIC_API tactic_status tactic_bench_attention(const uint16_t *K, const uint16_t *V, const float *q,
                                                int32_t n_tokens, int32_t head_dim, int32_t n_head,
                                                int32_t n_head_kv, int32_t selector, float p,
                                                int32_t n_threads, int32_t n_iter, double *out);

/* Seconds spent in: [0] prefill total, [1] clustering, [2] decode total,
 * [3] decode attention (global layers), [4] decode selection (Tactic); [5] the mean share
 * of cached tokens attended per global-layer query head over Tactic decode steps (-1: none).
 * Reset by reset=1. */
TACTIC_API tactic_status tactic_get_timings(tactic_context *ctx, double *out, int32_t n,
                                            int32_t reset);

/* ---- sampler ------------------------------------------------------------ */
typedef struct tactic_sampler tactic_sampler;

typedef struct {
    float temperature;       /* <= 0: greedy */
    int32_t top_k;           /* <= 0: off */
    float top_p;             /* 1: off */
    float min_p;             /* 0: off */
    float repeat_penalty;    /* 1: off */
    int32_t repeat_last_n;   /* window of the penalties; -1 = whole history */
    float presence_penalty;  /* 0: off */
    float frequency_penalty; /* 0: off */
    uint64_t seed;
} tactic_sampler_params;

TACTIC_API tactic_sampler_params tactic_sampler_default_params(void);
TACTIC_API tactic_status tactic_sampler_new(const tactic_sampler_params *params,
                                            tactic_sampler **out);
TACTIC_API void tactic_sampler_free(tactic_sampler *s);
/* Pick a token from logits[n_vocab] (not modified). */
TACTIC_API tactic_status tactic_sampler_sample(tactic_sampler *s, const float *logits,
                                               int32_t n_vocab, int32_t *out_token);
/* Record a token in the penalty history (prompt tokens and generated ones). */
TACTIC_API tactic_status tactic_sampler_accept(tactic_sampler *s, int32_t token);
TACTIC_API void tactic_sampler_reset(tactic_sampler *s);

/* ---- CUDA ---- */
/* The CUDA backend's kernels, exposed for tests and benchmarks. Each call copies its
 * inputs to GPU 0, runs the kernel, and copies the result back. A library built
 * without CUDA returns TACTIC_ERR_UNSUPPORTED from every call (device_count: 0), and
 * so does one that finds no usable GPU or driver. */

/* Number of usable CUDA devices; 0 when there is no driver or GPU (never fails). */
TACTIC_API int32_t tactic_cuda_device_count(void);
/* The device's name, NUL-terminated, truncated to cap bytes. */
TACTIC_API tactic_status tactic_cuda_device_name(int32_t device, char *buf, int32_t cap);
/* Tuning and benchmark options: "bench_iters" (> 0: every call below also times its
 * kernel over that many launches, rotating among copies of its largest input so that
 * repeats do not run from L2; read the median with tactic_cuda_last_ms),
 * "matvec_version" (1 or 2; 0 = default), "matvec_rows" (rows per warp: 1, 2, 4 or 8;
 * 0 = default), "attn_splits" (splits of the token range per KV head; 0 = automatic),
 * "attn_prefetch" (1: L2 prefetch of upcoming K/V rows; 0 = default, off). */
TACTIC_API tactic_status tactic_cuda_set_option(const char *name, int64_t value);
/* Milliseconds per launch of the last timed kernel (median), or -1. */
TACTIC_API double tactic_cuda_last_ms(void);
/* dst[n_rows][n_per_row] = dequantize(src), rows of tactic_type_row_size bytes. */
TACTIC_API tactic_status tactic_cuda_dequantize(int32_t type, const void *src, size_t src_size,
                                                int64_t n_rows, int64_t n_per_row, float *dst);
/* y[n_rows] = W x: W rows in their own type, x f32, f32 accumulation. */
TACTIC_API tactic_status tactic_cuda_matvec(int32_t type, const void *w, size_t w_size,
                                            int64_t n_rows, int64_t n_cols, const float *x,
                                            float *y);
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

/* CDEF END */

#ifdef __cplusplus
}
#endif

#endif /* TACTIC_H */
