// C ABI: contexts (KV cache + evaluation), logits, cancellation, timings.
#include <algorithm>
#include <cstring>

#include "../backend.h"
#include "../forward.h"
#include "../kv_cache.h"
#include "../resources.h"
#include "guard.h"
#include "tactic_internal.h"  // defines hooks declared there
#include "handles.h"

using tactic::guard;

namespace {
// One call at a time per context: a second thread is told so instead of racing.
struct BusyLock {
    std::unique_lock<std::mutex> lock;
    explicit BusyLock(tactic_context *c) : lock(c->busy, std::try_to_lock) {
        TACTIC_CHECK(lock.owns_lock(), TACTIC_ERR_BUSY, "this context is in use by another thread");
    }
};
// Refuses a context that would not fit in memory before its KV cache is allocated.
// Out-of-range parameters are left to Context's own checks (ValueErrors).
void check_context_fits(const tactic::HParams &hp, const tactic_context_params &p) {
    if (p.n_ctx < 0 || p.n_ctx > (1 << 24) || p.n_batch < 0) return;
    const uint64_t n_ctx = uint64_t(p.n_ctx > 0 ? p.n_ctx : hp.n_ctx_train);
    const uint64_t n_batch = std::min<uint64_t>(p.n_batch > 0 ? uint64_t(p.n_batch) : 512, n_ctx);
    const uint64_t kv = tactic::KVCache::bytes_for(hp, tactic::KVCache::layer_slots(hp, int(n_ctx), int(n_batch),
                                                                                   p.swa_full != 0));
    // Per-batch activations (x, h, tmp, q, att, k, v, gate, up) and one row of logits.
    const uint64_t per_token = 3ull * uint64_t(hp.n_embd) + 2ull * uint64_t(hp.n_head) * uint64_t(hp.head_dim) +
                               2ull * uint64_t(hp.n_head_kv) * uint64_t(hp.head_dim) + 2ull * uint64_t(hp.n_ff);
    const uint64_t buffers = (n_batch * per_token + uint64_t(hp.n_vocab)) * sizeof(float);
    tactic::check_fits(kv + buffers, "a context of " + std::to_string(n_ctx) + " tokens (KV cache " +
                                         tactic::format_bytes(kv) + " + buffers " + tactic::format_bytes(buffers) + ")");
}
}  // namespace

extern "C" {

TACTIC_API tactic_context_params tactic_context_default_params(void) {
    tactic_context_params p;
    std::memset(&p, 0, sizeof p);
    p.attention = TACTIC_ATTN_AUTO;
    // Measured on this CPU with the bounded selector, margin and output estimate
    // (docs/TACTIC.md, "Decode speed"; Gemma 3 270M, 2,048 decode steps on a quiet
    // machine): Tactic decodes at 0.80x full attention's speed at 16K tokens and 1.30x at
    // 30K, so AUTO switches between them, at 24K. On CUDA, AUTO stays full attention
    // (Tactic's pages cost memory and its step is slower than full at 32K: docs/TACTIC.md).
    p.tactic_min_ctx = 24576;
    p.tactic_p = 0.9f;
    p.cluster_size = 16;
    p.n_sink = 4;     // the BOS sink stays out of K-means (docs/TACTIC.md: measured at 4K)
    p.n_recent = 64;
    p.tactic_selector = TACTIC_SELECT_BOUNDED;
    p.tactic_block_size = 256;
    p.seed = 0x5eed;
    p.n_gpu_layers = -1;  // on CUDA: every layer
    return p;
}

TACTIC_API tactic_status tactic_context_new(tactic_model *model, const tactic_context_params *params,
                                            tactic_context **out) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(model && out, "model and out must not be NULL");
        *out = nullptr;
        const tactic_context_params p = params ? *params : tactic_context_default_params();
        auto c = std::make_unique<tactic_context>();
        c->model = model;
        // On CUDA the KV cache and buffers go to GPU memory: the CUDA backend checks those
        // (and a split context's CPU layers, once its GPU part fits: forward.cpp).
        if (tactic::resolve_device(p.device) != TACTIC_DEVICE_CUDA || p.n_gpu_layers == 0)
            check_context_fits(model->weights().hp, p);
        c->ctx = std::make_unique<tactic::Context>(model->weights(), p);
        model->refs.fetch_add(1, std::memory_order_acq_rel);
        *out = c.release();
    });
}

TACTIC_API void tactic_context_free(tactic_context *ctx) {
    if (!ctx) return;
    // Another thread may still be inside tactic_eval (e.g. a cancelled generation):
    // stop it and wait for it before the memory goes.
    ctx->ctx->cancel();
    { std::lock_guard<std::mutex> wait_for_eval(ctx->busy); }
    tactic_model *model = ctx->model;
    delete ctx;
    tactic_model_release(model);
}

TACTIC_API int32_t tactic_context_n_ctx(const tactic_context *ctx) { return ctx ? ctx->ctx->n_ctx() : 0; }
TACTIC_API int32_t tactic_context_device(const tactic_context *ctx) { return ctx ? ctx->ctx->device() : 0; }

TACTIC_API int32_t tactic_context_n_past(const tactic_context *ctx) { return ctx ? ctx->ctx->n_past() : 0; }

TACTIC_API tactic_status tactic_context_truncate(tactic_context *ctx, int32_t n_keep) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(ctx, "ctx must not be NULL");
        BusyLock lock(ctx);
        ctx->ctx->truncate(n_keep);
    });
}

TACTIC_API tactic_status tactic_eval(tactic_context *ctx, const int32_t *tokens, int32_t n, int32_t logits_all) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(ctx, "ctx must not be NULL");
        BusyLock lock(ctx);
        if (logits_all && n > 1)  // n rows of n_vocab floats
            tactic::check_fits(uint64_t(n) * uint64_t(ctx->model->weights().hp.n_vocab) * sizeof(float),
                               "the logits of " + std::to_string(n) + " positions");
        ctx->ctx->eval(tokens, n, logits_all != 0);
    });
}

TACTIC_API tactic_status tactic_eval_async(tactic_context *ctx, int32_t token) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(ctx, "ctx must not be NULL");
        BusyLock lock(ctx);
        ctx->ctx->eval_async(token);
    });
}

TACTIC_API tactic_status tactic_synchronize(tactic_context *ctx) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(ctx, "ctx must not be NULL");
        BusyLock lock(ctx);
        ctx->ctx->sync();
    });
}

TACTIC_API const float *tactic_get_logits(tactic_context *ctx, int32_t i) {
    if (!ctx) return nullptr;
    const float *out = nullptr;
    guard([&] {  // finishes an eval_async step first; its error leaves NULL (tactic_synchronize reports it)
        ctx->ctx->sync();
        out = ctx->ctx->logits(i);
    });
    return out;
}

TACTIC_API int32_t tactic_get_n_logits_rows(const tactic_context *ctx) {
    if (!ctx) return 0;
    int32_t n = 0;
    guard([&] {
        ctx->ctx->sync();
        n = ctx->ctx->n_logit_rows();
    });
    return n;
}

TACTIC_API void tactic_cancel(tactic_context *ctx) {
    if (ctx) ctx->ctx->cancel();
}

TACTIC_API tactic_status tactic_get_timings(tactic_context *ctx, double *out, int32_t n, int32_t reset) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(ctx && out && n >= 0, "ctx and out must not be NULL");
        ctx->ctx->timings(out, n, reset != 0);
    });
}

}  // extern "C"
