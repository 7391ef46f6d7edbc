#include "vocab.h"

#include <algorithm>

#include "../common.h"
#include "../gguf.h"

namespace tactic {

namespace {

const char *kPrefix = "tokenizer.ggml.";

// Token texts llama.cpp recognises when the file does not name the token (FIM) or
// that always end generation. A match that is not typed control becomes control.
// Not "</s>": recent llama.cpp lists it (for PaddleOCR), but in Gemma 3 it is a
// user-defined HTML tag that must stay a plain, always-split token.
const char *const kEogTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
};
// EOT when the file names none (the first present wins).
const char *const kEotTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "<end_of_utterance>",
};
const char *const kEomTexts[] = {"<|eom_id|>"};
const char *const kFimPreTexts[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "<|code_prefix|>", "<|prefix|>"};
const char *const kFimSufTexts[] = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>", "<|code_suffix|>", "<|suffix|>"};
const char *const kFimMidTexts[] = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<MID>", "<|code_middle|>", "<|middle|>"};
const char *const kFimPadTexts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"};
const char *const kFimRepTexts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"};
const char *const kFimSepTexts[] = {"<|file_sep|>"};
// gpt-oss's structural tokens: always split out and always rendered.
const char *const kUserDefinedTexts[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};

std::string key(const char *name) { return std::string(kPrefix) + name; }

const GGUFValue *numeric_array(const GGUFFile &f, const std::string &k) {
    const GGUFValue *v = f.find(k);
    if (!v) return nullptr;
    TACTIC_CHECK(v->type == GGUFType::ARRAY, TACTIC_ERR_FORMAT, k + " must be an array");
    const GGUFType t = v->elem_type;
    TACTIC_CHECK(t != GGUFType::STRING && t != GGUFType::ARRAY, TACTIC_ERR_FORMAT,
                 k + " must be an array of numbers");
    return v;
}

}  // namespace

bool Vocab::is_eog(int32_t id) const { return std::binary_search(eog_ids.begin(), eog_ids.end(), id); }

void Vocab::load(const GGUFFile &f, int32_t default_bos, int32_t default_eos, int32_t default_unk,
                 bool default_add_bos) {
    const GGUFValue *tokens = f.get_arr(key("tokens"), GGUFType::STRING);
    TACTIC_CHECK(tokens, TACTIC_ERR_FORMAT, "tokenizer.ggml.tokens is missing");
    const size_t n = tokens->arr.size();
    TACTIC_CHECK(n > 0, TACTIC_ERR_FORMAT, "tokenizer.ggml.tokens is empty");
    TACTIC_CHECK(n < size_t(INT32_MAX), TACTIC_ERR_FORMAT, "tokenizer.ggml.tokens is too long");

    text.resize(n);
    for (size_t i = 0; i < n; i++) {
        text[i] = tokens->arr[i].str;
        // An empty text could never be matched; llama.cpp gives it a placeholder too.
        if (text[i].empty()) text[i] = "[EMPTY_" + std::to_string(i) + "]";
    }

    score.assign(n, 0.0f);
    if (const GGUFValue *s = numeric_array(f, key("scores"))) {
        TACTIC_CHECK(s->arr.size() == n, TACTIC_ERR_FORMAT,
                     "tokenizer.ggml.scores has " + std::to_string(s->arr.size()) + " entries for " +
                         std::to_string(n) + " tokens");
        for (size_t i = 0; i < n; i++) score[i] = float(s->arr[i].as_float());
    }

    type.assign(n, TokenType::NORMAL);
    if (const GGUFValue *t = numeric_array(f, key("token_type"))) {
        TACTIC_CHECK(t->arr.size() == n, TACTIC_ERR_FORMAT,
                     "tokenizer.ggml.token_type has " + std::to_string(t->arr.size()) + " entries for " +
                         std::to_string(n) + " tokens");
        for (size_t i = 0; i < n; i++) {
            TACTIC_CHECK(t->arr[i].is_int(), TACTIC_ERR_FORMAT, "tokenizer.ggml.token_type must hold integers");
            const int64_t v = t->arr[i].as_int();
            TACTIC_CHECK(v >= 0 && v <= 6, TACTIC_ERR_FORMAT,
                         "tokenizer.ggml.token_type[" + std::to_string(i) + "] = " + std::to_string(v) +
                             " is not a token type (0..6)");
            type[i] = TokenType(v);
        }
    }

    if (const int32_t dup = by_text_.build(text); dup >= 0) {
        fail(TACTIC_ERR_FORMAT, "tokenizer.ggml.tokens: token " + std::to_string(dup) + " repeats the text of token " +
                                    std::to_string(find(text[dup])));
    }

    // Special ids: the model's defaults (dropped if outside this vocab), overridden by
    // the keys. A key naming a token outside the vocab is corrupt data; 0xFFFFFFFF / -1
    // means "none".
    auto id_or_none = [&](int32_t def) { return valid(def) ? def : -1; };
    auto read_id = [&](const char *name, int32_t def, bool strict) {
        const std::string k = key(name);
        if (!f.has(k)) return id_or_none(def);
        const int64_t v = f.get_int(k, -1);
        if (v == -1 || v == int64_t(UINT32_MAX)) return int32_t(-1);
        if (v < 0 || v >= int64_t(n)) {
            TACTIC_CHECK(!strict, TACTIC_ERR_FORMAT,
                         k + " = " + std::to_string(v) + " is outside the vocabulary of " + std::to_string(n));
            return int32_t(-1);
        }
        return int32_t(v);
    };
    bos = read_id("bos_token_id", default_bos, true);
    eos = read_id("eos_token_id", default_eos, true);
    eot = read_id("eot_token_id", -1, true);
    eom = read_id("eom_token_id", -1, true);
    unk = read_id("unknown_token_id", default_unk, true);
    pad = read_id("padding_token_id", -1, false);  // unused here; some converters write n_vocab

    add_bos = f.get_bool(key("add_bos_token"), default_add_bos);
    add_eos = f.get_bool(key("add_eos_token"), false);
    TACTIC_CHECK(!add_bos || bos >= 0, TACTIC_ERR_FORMAT, "tokenizer.ggml.add_bos_token is set but there is no BOS token");
    TACTIC_CHECK(!add_eos || eos >= 0, TACTIC_ERR_FORMAT, "tokenizer.ggml.add_eos_token is set but there is no EOS token");

    int32_t fim_pre = read_id("fim_pre_token_id", -1, true), fim_suf = read_id("fim_suf_token_id", -1, true);
    int32_t fim_mid = read_id("fim_mid_token_id", -1, true), fim_pad = read_id("fim_pad_token_id", -1, true);
    int32_t fim_rep = read_id("fim_rep_token_id", -1, true), fim_sep = read_id("fim_sep_token_id", -1, true);

    auto make_control = [&](int32_t id) {
        if (type[id] != TokenType::CONTROL) type[id] = TokenType::CONTROL;
    };
    // Fills an id the file left unnamed from the first text present.
    auto detect = [&](int32_t &id, auto &texts) {
        if (id >= 0) return;
        for (const char *s : texts) {
            if ((id = find(s)) >= 0) {
                make_control(id);
                return;
            }
        }
    };
    detect(eot, kEotTexts);
    detect(eom, kEomTexts);
    detect(fim_pre, kFimPreTexts);
    detect(fim_suf, kFimSufTexts);
    detect(fim_mid, kFimMidTexts);
    detect(fim_pad, kFimPadTexts);
    detect(fim_rep, kFimRepTexts);
    detect(fim_sep, kFimSepTexts);

    eog_ids.clear();
    for (int32_t id : {fim_pad, fim_rep, fim_sep, eos, eot, eom})
        if (id >= 0) eog_ids.push_back(id);
    for (const char *s : kEogTexts) {
        if (int32_t id = find(s); id >= 0) {
            eog_ids.push_back(id);
            make_control(id);
        }
    }
    for (const char *s : kUserDefinedTexts)
        if (int32_t id = find(s); id >= 0) type[id] = TokenType::USER_DEFINED;
    std::sort(eog_ids.begin(), eog_ids.end());
    eog_ids.erase(std::unique(eog_ids.begin(), eog_ids.end()), eog_ids.end());
    // As llama.cpp: with <|return|> and <|call|> (gpt-oss), or <|calls|> and <|flush|>
    // (solar-open), <|end|> only ends a message, not generation.
    auto eog_has = [&](const char *s) {
        const int32_t id = find(s);
        return id >= 0 && is_eog(id) ? id : -1;
    };
    auto drop_eog = [&](int32_t id, TokenType t) {
        eog_ids.erase(std::find(eog_ids.begin(), eog_ids.end(), id));
        type[id] = t;
    };
    if (const int32_t end = eog_has("<|end|>"); end >= 0) {
        const bool call = eog_has("<|call|>") >= 0 || eog_has("<|calls|>") >= 0;
        if (call && (eog_has("<|return|>") >= 0 || eog_has("<|flush|>") >= 0)) drop_eog(end, TokenType::USER_DEFINED);
    }

    // Built last: the overrides above change which tokens are special.
    special_tokens.clear();
    for (size_t i = 0; i < n; i++) {
        const TokenType t = type[i];
        if (t == TokenType::UNKNOWN || t == TokenType::CONTROL || t == TokenType::USER_DEFINED)
            special_tokens.push_back(int32_t(i));
    }
    std::stable_sort(special_tokens.begin(), special_tokens.end(),
                     [&](int32_t a, int32_t b) { return text[a].size() > text[b].size(); });
}

}  // namespace tactic
