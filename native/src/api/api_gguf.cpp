// C ABI: GGUF inspection without building a model (validation, fuzzing, tools).
#include "../gguf.h"
#include "guard.h"

struct tactic_gguf {
    std::unique_ptr<tactic::GGUFFile> file;
};

extern "C" {

TACTIC_API tactic_status tactic_gguf_open(const char *path, tactic_gguf **out) {
    return tactic::guard([&] {
        TACTIC_REQUIRE_ARG(path && out, "path and out must not be NULL");
        *out = nullptr;
        auto g = std::make_unique<tactic_gguf>();
        g->file = tactic::GGUFFile::open(path);
        *out = g.release();
    });
}

TACTIC_API void tactic_gguf_free(tactic_gguf *g) { delete g; }

TACTIC_API int64_t tactic_gguf_n_tensors(const tactic_gguf *g) {
    return g ? int64_t(g->file->tensors().size()) : -1;
}

TACTIC_API int64_t tactic_gguf_n_kv(const tactic_gguf *g) { return g ? int64_t(g->file->kv().size()) : -1; }

TACTIC_API uint32_t tactic_gguf_version(const tactic_gguf *g) { return g ? g->file->version() : 0; }

}  // extern "C"
