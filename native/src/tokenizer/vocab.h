// The vocabulary a GGUF file carries under tokenizer.ggml.*: token texts, scores
// and types, the special ids and flags, and the derived sets the tokenizers use
// (text -> id, the special tokens split out before tokenizing, end-of-generation
// ids). See FORMATS.md §4.1.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "text_index.h"

namespace tactic {

class GGUFFile;

// tokenizer.ggml.token_type values (gguf-py's TokenType).
enum class TokenType : uint8_t {
    UNDEFINED = 0, NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6,
};

enum class VocabKind : uint8_t { SPM, BPE };

struct Vocab {
    VocabKind kind = VocabKind::SPM;
    std::string model;  // tokenizer.ggml.model
    std::string pre;    // tokenizer.ggml.pre ("" if absent)

    std::vector<std::string> text;
    std::vector<float> score;
    std::vector<TokenType> type;

    int32_t bos = -1, eos = -1, eot = -1, eom = -1, unk = -1, pad = -1;
    bool add_bos = false, add_eos = false, add_space_prefix = false;

    // Texts of the unknown, control and user-defined tokens, longest first: they are
    // cut out of the input before tokenizing (FORMATS §4.1).
    std::vector<int32_t> special_tokens;
    std::vector<int32_t> eog_ids;  // sorted

    // Reads the common keys. `kind` and the model-specific defaults are set by the
    // caller before (defaults) and may be adjusted after (pre-tokenizer flags).
    // Throws Error(FORMAT) for inconsistent data.
    void load(const GGUFFile &file, int32_t default_bos, int32_t default_eos, int32_t default_unk,
              bool default_add_bos);

    int32_t size() const { return int32_t(text.size()); }
    bool valid(int32_t id) const { return id >= 0 && id < size(); }
    // Id of the token with exactly this text, or -1.
    int32_t find(std::string_view s) const { return by_text_.find(s); }
    bool is_eog(int32_t id) const;

    Vocab() = default;
    Vocab(const Vocab &) = delete;  // by_text_ points at text
    Vocab &operator=(const Vocab &) = delete;

private:
    TextIndex by_text_;
};

}  // namespace tactic
