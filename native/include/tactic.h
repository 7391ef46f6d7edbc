/* libtactic: the public header of the pytactic native runtime.
 *
 * A C ABI of opaque handles, status codes and a per-thread last-error message.
 * No C++ exception or abort crosses it. Parameter structs come with a
 * tactic_*_default_params() function so fields can be added without breaking
 * callers.
 *
 * This is the user-facing ABI. Test, benchmark and research hooks (tactic_bench_*,
 * the CUDA kernels' entry points, Tactic's selection/debug/evaluation calls) are in
 * tactic_internal.h: no stability promise, not for applications.
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
    int32_t n_gpu_layers; /* unused (see tactic_context_params.n_gpu_layers) */
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
/* Where a context runs. AUTO: CUDA when a usable GPU is there (and the library was
 * built with CUDA), else the CPU. On CUDA the weights, the KV cache and the activations
 * live in GPU memory, and attention is full (Tactic runs on the CPU only, for now). */
enum { TACTIC_DEVICE_AUTO = 0, TACTIC_DEVICE_CPU = 1, TACTIC_DEVICE_CUDA = 2 };

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
    /* added by the GPU work (additive) */
    int32_t device;             /* TACTIC_DEVICE_* */
    /* added by the document Q&A work (additive) */
    int32_t swa_full;           /* 1: sliding-window layers keep every position (no rings) */
    /* added by the Tactic work, issue 12 (additive) */
    int32_t tactic_block_size;  /* new tokens are clustered in blocks of this many (default 256);
                                   0: the older whole-cache re-clustering (recluster_interval) */
    float tactic_force_fraction; /* (0, 1]: keep exactly this share of the cached tokens per
                                    query head (benchmarks on random-weight models); 0 = off */
    /* added by the layer-split work (additive) */
    int32_t n_gpu_layers;       /* device CUDA: the first n layers run on the GPU, the rest
                                   (and then the embedding and output head) on the CPU, as
                                   llama.cpp's -ngl; -1 (default) or >= n_layer: all; 0: CPU only */
} tactic_context_params;

TACTIC_API tactic_context_params tactic_context_default_params(void);
TACTIC_API tactic_status tactic_context_new(tactic_model *model, const tactic_context_params *params,
                                            tactic_context **out);
/* Cancels and waits for a tactic_eval still running on another thread, then frees. */
TACTIC_API void tactic_context_free(tactic_context *ctx);
TACTIC_API int32_t tactic_context_n_ctx(const tactic_context *ctx);
/* The device the context runs on: TACTIC_DEVICE_CPU or TACTIC_DEVICE_CUDA (AUTO resolved). */
TACTIC_API int32_t tactic_context_device(const tactic_context *ctx);
/* Tokens currently in the cache. */
TACTIC_API int32_t tactic_context_n_past(const tactic_context *ctx);
/* Drop cached tokens from position n_keep on (n_keep <= n_past). */
TACTIC_API tactic_status tactic_context_truncate(tactic_context *ctx, int32_t n_keep);
/* Evaluate n tokens after the cached ones. logits_all: keep logits of every
 * position, else of the last only. TACTIC_ERR_CONTEXT_FULL if they do not fit. */
TACTIC_API tactic_status tactic_eval(tactic_context *ctx, const int32_t *tokens, int32_t n,
                                     int32_t logits_all);
/* Evaluate one token after the cached ones and return once the device has the work
 * (CUDA: the decode step is launched), so that the caller can work on the host
 * meanwhile; tactic_synchronize waits for it, and so does every later call on the
 * context that needs it. On the CPU the token is evaluated before it returns. */
TACTIC_API tactic_status tactic_eval_async(tactic_context *ctx, int32_t token);
/* Finish the step tactic_eval_async began (its errors are reported here). */
TACTIC_API tactic_status tactic_synchronize(tactic_context *ctx);
/* Logits of row i of the last tactic_eval (i = -1: the last row). Valid until the
 * next eval. NULL if a step begun by tactic_eval_async failed (tactic_synchronize says why). */
TACTIC_API const float *tactic_get_logits(tactic_context *ctx, int32_t i);
TACTIC_API int32_t tactic_get_n_logits_rows(const tactic_context *ctx);
/* Ask a running tactic_eval on this context to stop (thread-safe, async-signal-safe). */
TACTIC_API void tactic_cancel(tactic_context *ctx);

/* ---- context state, checkpoints, memory ----------------------------------- */
/* Sliding-window layers keep a ring of window + n_batch positions, so tactic_context_truncate
 * may keep fewer tokens than asked (then n_past says how many): the rings must still hold
 * the window before n_keep, or a checkpoint at or after n_keep (and at most n_batch tokens
 * after it) must exist. The context keeps the first checkpoint taken since it was emptied
 * and the newest one. */
TACTIC_API tactic_status tactic_context_checkpoint(tactic_context *ctx);
/* Tokens evaluated by this context since it was created (prompts and decode steps). */
TACTIC_API int64_t tactic_context_n_evaluated(const tactic_context *ctx);
/* The evaluated state (K/V of the cached positions, last logits row, Tactic's clusters)
 * as bytes; a context with other Tactic clustering parameters rebuilds the clusters from
 * the keys instead. set is all-or-nothing: on any error
 * the context is unchanged. Another model or n_ctx: TACTIC_ERR_INVALID_ARGUMENT; a
 * damaged blob: TACTIC_ERR_FORMAT. */
TACTIC_API tactic_status tactic_context_state_size(tactic_context *ctx, size_t *out);
TACTIC_API tactic_status tactic_context_state_get(tactic_context *ctx, uint8_t *dst, size_t size);
TACTIC_API tactic_status tactic_context_state_set(tactic_context *ctx, const uint8_t *src, size_t size);
typedef struct {
    uint64_t reserved;    /* K/V bytes of the whole context (rings at their size) */
    uint64_t committed;   /* K/V bytes of the positions written so far */
    uint64_t checkpoints; /* copies of the rings kept for prefix reuse */
    uint64_t flat;        /* what a cache without rings would reserve (every layer n_ctx) */
} tactic_kv_memory;
TACTIC_API tactic_status tactic_context_kv_memory(const tactic_context *ctx, tactic_kv_memory *out);
/* The same figures (committed = 0) for a context these params would create. */
TACTIC_API tactic_status tactic_kv_memory_estimate(const tactic_model *model, const tactic_context_params *params,
                                                   tactic_kv_memory *out);
/* Bytes the system can still give (MemAvailable, cgroup, TACTIC_MEMORY_LIMIT); 0 if unknown. */
TACTIC_API uint64_t tactic_available_memory(void);

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
/* The same over the allowed tokens only: mask holds (n_vocab + 31) / 32 words, token i
 * allowed where bit (i % 32) of mask[i / 32] is 1. Masked tokens are removed before the
 * penalties and every other step. TACTIC_ERR_INVALID_ARGUMENT if no allowed token has a
 * finite logit. */
TACTIC_API tactic_status tactic_sampler_sample_masked(tactic_sampler *s, const float *logits,
                                                      int32_t n_vocab, const uint32_t *mask,
                                                      int32_t *out_token);
/* Record a token in the penalty history (prompt tokens and generated ones). */
TACTIC_API tactic_status tactic_sampler_accept(tactic_sampler *s, int32_t token);
TACTIC_API void tactic_sampler_reset(tactic_sampler *s);

/* ---- CUDA ---- */
/* (The CUDA kernels' own entry points, for tests and benchmarks, are in tactic_internal.h.) */
/* Number of usable CUDA devices; 0 when there is no driver or GPU (never fails). */
TACTIC_API int32_t tactic_cuda_device_count(void);
/* The device's name, NUL-terminated, truncated to cap bytes. */
TACTIC_API tactic_status tactic_cuda_device_name(int32_t device, char *buf, int32_t cap);
/* Where time went, and what Tactic attended (Model.last_stats reads it). */
/* Seconds spent in: [0] prefill total, [1] clustering, [2] decode total,
 * [3] decode attention (global layers), [4] decode selection (Tactic); [5] the mean share
 * of cached tokens attended per global-layer query head over Tactic decode steps (-1: none).
 * Reset by reset=1. */
TACTIC_API tactic_status tactic_get_timings(tactic_context *ctx, double *out, int32_t n,
                                            int32_t reset);

/* CDEF END */

#ifdef __cplusplus
}
#endif

#endif /* TACTIC_H */
