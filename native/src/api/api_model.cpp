// C ABI: loading a model and reading what it is.
#include <cstring>

#include "../resources.h"
#include "guard.h"
#include "handles.h"

using tactic::guard;

void tactic_model_release(tactic_model *model) {
    if (model && model->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete model;
}

extern "C" {

TACTIC_API tactic_model_params tactic_model_default_params(void) {
    tactic_model_params p;
    std::memset(&p, 0, sizeof p);
    p.use_mmap = 1;
    return p;
}

TACTIC_API tactic_status tactic_model_load(const char *path, const tactic_model_params *params,
                                           tactic_model **out) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(path && out, "path and out must not be NULL");
        *out = nullptr;
        const tactic_model_params p = params ? *params : tactic_model_default_params();
        auto m = std::make_unique<tactic_model>();
        m->file = tactic::GGUFFile::open(path, p.use_mmap != 0);
        try {
            if (!p.vocab_only) {
                m->model = tactic::Model::from_gguf(*m->file);
                // Mapped weights are paged in from the file as they are used: a model
                // larger than the memory left would thrash, so it is refused up front.
                // (Read into memory, the whole file was already checked by GGUFFile.)
                if (p.use_mmap)
                    tactic::check_fits(uint64_t(m->model->n_bytes), "the weights of this model");
            }
            if (m->file->has("tokenizer.ggml.model")) m->tokenizer = tactic::Tokenizer::from_gguf(*m->file);
            TACTIC_CHECK(m->model || m->tokenizer, TACTIC_ERR_FORMAT, "vocab_only: the file has no tokenizer");
        } catch (const tactic::Error &e) {
            tactic::fail(e.status, "'" + std::string(path) + "': " + e.what());
        }
        *out = m.release();
    });
}

TACTIC_API void tactic_model_free(tactic_model *model) { tactic_model_release(model); }

TACTIC_API tactic_status tactic_model_get_info(const tactic_model *model, tactic_model_info *out) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(model && out, "model and out must not be NULL");
        const tactic::HParams &h = model->weights().hp;
        std::memset(out, 0, sizeof *out);
        std::strncpy(out->architecture, h.arch.c_str(), sizeof out->architecture - 1);
        out->n_vocab = h.n_vocab;
        out->n_ctx_train = h.n_ctx_train;
        out->n_embd = h.n_embd;
        out->n_layer = h.n_layer;
        out->n_head = h.n_head;
        out->n_head_kv = h.n_head_kv;
        out->head_dim = h.head_dim;
        out->n_ff = h.n_ff;
        out->n_params = model->weights().n_params;
        out->size_bytes = model->weights().n_bytes;
    });
}

TACTIC_API tactic_status tactic_model_meta_str(const tactic_model *model, const char *key, const char **out) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(model && key && out, "model, key and out must not be NULL");
        *out = nullptr;
        const tactic::GGUFValue *v = model->file->find(key);
        TACTIC_REQUIRE_ARG(v, std::string("no metadata key '") + key + "'");
        auto *m = const_cast<tactic_model *>(model);
        std::lock_guard<std::mutex> lock(m->meta_mutex);
        auto it = m->meta_cache.find(key);
        if (it == m->meta_cache.end()) it = m->meta_cache.emplace(key, v->to_string()).first;
        *out = it->second.c_str();
    });
}

TACTIC_API tactic_status tactic_model_global_layers(const tactic_model *model, uint8_t *out, int32_t n_layer) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(model && out, "model and out must not be NULL");
        const tactic::HParams &h = model->weights().hp;
        TACTIC_REQUIRE_ARG(n_layer == h.n_layer, "n_layer must equal the model's layer count");
        for (int il = 0; il < h.n_layer; il++) out[il] = h.is_global(il) ? 1 : 0;
    });
}

}  // extern "C"
