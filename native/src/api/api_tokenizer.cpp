// C ABI: the model's tokenizer (tokenize, pieces, detokenize, special tokens).
#include <cstring>
#include <string>
#include <vector>

#include "guard.h"
#include "handles.h"

using tactic::guard;

namespace {

// Copies `s` to buf when it fits; *n_out always receives the length needed.
void copy_out(const std::string &s, char *buf, int32_t cap, int32_t *n_out) {
    TACTIC_CHECK(s.size() <= size_t(INT32_MAX), TACTIC_ERR_INVALID_ARGUMENT, "the text is too long for int32 sizes");
    if (n_out) *n_out = int32_t(s.size());
    TACTIC_REQUIRE_ARG(int64_t(s.size()) <= int64_t(cap),
                       "buffer too small: " + std::to_string(s.size()) + " bytes needed, cap is " + std::to_string(cap));
    if (!s.empty()) std::memcpy(buf, s.data(), s.size());
}

}  // namespace

extern "C" {

TACTIC_API tactic_status tactic_tokenize(const tactic_model *model, const char *text, size_t len,
                                         int32_t add_special, int32_t parse_special, int32_t *out,
                                         int32_t cap, int32_t *n_out) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(model && n_out, "model and n_out must not be NULL");
        TACTIC_REQUIRE_ARG(text || len == 0, "text is NULL");
        TACTIC_REQUIRE_ARG(cap >= 0 && (out || cap == 0), "out must hold cap >= 0 tokens");
        *n_out = 0;
        const std::vector<int32_t> ids =
            model->tok().tokenize(std::string_view(text ? text : "", len), add_special != 0, parse_special != 0);
        TACTIC_REQUIRE_ARG(ids.size() <= size_t(INT32_MAX), "too many tokens for int32 counts");
        *n_out = int32_t(ids.size());
        TACTIC_REQUIRE_ARG(ids.size() <= size_t(cap), "output too small: " + std::to_string(ids.size()) +
                                                           " tokens needed, cap is " + std::to_string(cap));
        if (!ids.empty()) std::memcpy(out, ids.data(), ids.size() * sizeof(int32_t));
    });
}

TACTIC_API tactic_status tactic_token_to_piece(const tactic_model *model, int32_t token, int32_t special,
                                               char *buf, int32_t cap, int32_t *n_out) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(model && n_out, "model and n_out must not be NULL");
        TACTIC_REQUIRE_ARG(cap >= 0 && (buf || cap == 0), "buf must hold cap >= 0 bytes");
        *n_out = 0;
        copy_out(model->tok().token_to_piece(token, special != 0), buf, cap, n_out);
    });
}

TACTIC_API tactic_status tactic_detokenize(const tactic_model *model, const int32_t *tokens, int32_t n_tokens,
                                           int32_t special, char *buf, int32_t cap, int32_t *n_out) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(model && n_out, "model and n_out must not be NULL");
        TACTIC_REQUIRE_ARG(n_tokens >= 0 && (tokens || n_tokens == 0), "tokens must hold n_tokens >= 0 ids");
        TACTIC_REQUIRE_ARG(cap >= 0 && (buf || cap == 0), "buf must hold cap >= 0 bytes");
        *n_out = 0;
        copy_out(model->tok().detokenize(tokens, size_t(n_tokens), special != 0), buf, cap, n_out);
    });
}

// The int-returning accessors cannot report errors: a NULL model or a model without
// a tokenizer reads as "none" (-1 / 0).
TACTIC_API int32_t tactic_token_bos(const tactic_model *model) {
    return model && model->tokenizer ? model->tokenizer->bos() : -1;
}

TACTIC_API int32_t tactic_token_eos(const tactic_model *model) {
    return model && model->tokenizer ? model->tokenizer->eos() : -1;
}

TACTIC_API int32_t tactic_token_is_eog(const tactic_model *model, int32_t token) {
    return model && model->tokenizer && model->tokenizer->is_eog(token) ? 1 : 0;
}

TACTIC_API int32_t tactic_vocab_add_bos(const tactic_model *model) {
    return model && model->tokenizer && model->tokenizer->add_bos() ? 1 : 0;
}

TACTIC_API int32_t tactic_vocab_add_eos(const tactic_model *model) {
    return model && model->tokenizer && model->tokenizer->add_eos() ? 1 : 0;
}

}  // extern "C"
