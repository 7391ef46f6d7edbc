// C ABI: a context's evaluated state (save/restore), ring checkpoints, token counter,
// KV memory accounting.
#include <algorithm>
#include <cstring>

#include "../forward.h"
#include "../kv_cache.h"
#include "../resources.h"
#include "guard.h"
#include "handles.h"

using tactic::guard;

namespace {
void fill(const tactic::KVAccounting &a, tactic_kv_memory *out) {
    out->reserved = a.reserved;
    out->committed = a.committed;
    out->checkpoints = a.checkpoints;
    out->flat = a.flat;
}

// The blob is the CPU cache's; a CUDA context keeps its K/V on the device (a split
// context, n_gpu_layers, copies its GPU layers' K/V through the host cache).
void require_cpu(tactic_context *c) {
    TACTIC_CHECK(c->ctx->device() != TACTIC_DEVICE_CUDA || c->ctx->n_gpu_layers() < c->model->weights().hp.n_layer,
                 TACTIC_ERR_UNSUPPORTED,
                 "context state: saving and restoring runs on CPU and split (n_gpu_layers) contexts only "
                 "(this one is on CUDA)");
}

struct Busy {
    std::unique_lock<std::mutex> lock;
    explicit Busy(tactic_context *c) : lock(c->busy, std::try_to_lock) {
        TACTIC_CHECK(lock.owns_lock(), TACTIC_ERR_BUSY, "this context is in use by another thread");
    }
};
}  // namespace

extern "C" {

TACTIC_API tactic_status tactic_context_checkpoint(tactic_context *ctx) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(ctx, "ctx must not be NULL");
        Busy lock(ctx);
        ctx->ctx->checkpoint();
    });
}

TACTIC_API int64_t tactic_context_n_evaluated(const tactic_context *ctx) { return ctx ? ctx->ctx->n_evaluated() : 0; }

TACTIC_API tactic_status tactic_context_state_size(tactic_context *ctx, size_t *out) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(ctx && out, "ctx and out must not be NULL");
        Busy lock(ctx);
        require_cpu(ctx);
        ctx->ctx->prepare_state();
        *out = ctx->ctx->state_size();
    });
}

TACTIC_API tactic_status tactic_context_state_get(tactic_context *ctx, uint8_t *dst, size_t size) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(ctx && dst, "ctx and dst must not be NULL");
        Busy lock(ctx);
        require_cpu(ctx);
        ctx->ctx->prepare_state();
        ctx->ctx->state_write(dst, size);
    });
}

TACTIC_API tactic_status tactic_context_state_set(tactic_context *ctx, const uint8_t *src, size_t size) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(ctx && src, "ctx and src must not be NULL");
        Busy lock(ctx);
        require_cpu(ctx);
        ctx->ctx->state_read(src, size);
    });
}

TACTIC_API tactic_status tactic_context_kv_memory(const tactic_context *ctx, tactic_kv_memory *out) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(ctx && out, "ctx and out must not be NULL");
        ctx->ctx->sync();
        fill(ctx->ctx->kv().accounting(), out);
    });
}

TACTIC_API tactic_status tactic_kv_memory_estimate(const tactic_model *model, const tactic_context_params *params,
                                                   tactic_kv_memory *out) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(model && params && out, "model, params and out must not be NULL");
        const tactic::HParams &hp = model->weights().hp;
        const tactic_context_params &p = *params;
        TACTIC_REQUIRE_ARG(p.n_ctx >= 0 && p.n_ctx <= (1 << 24) && p.n_batch >= 0, "n_ctx or n_batch out of range");
        const int n_ctx = p.n_ctx > 0 ? p.n_ctx : hp.n_ctx_train;
        const int n_batch = std::min(p.n_batch > 0 ? p.n_batch : 512, n_ctx);
        const auto slots = tactic::KVCache::layer_slots(hp, n_ctx, n_batch, p.swa_full != 0);
        std::memset(out, 0, sizeof *out);
        out->reserved = tactic::KVCache::bytes_for(hp, slots);
        out->flat = tactic::KVCache::bytes_for(hp, std::vector<int>(size_t(hp.n_layer), n_ctx));
    });
}

TACTIC_API uint64_t tactic_available_memory(void) { return tactic::available_memory(); }

}  // extern "C"
