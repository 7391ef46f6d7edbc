// Pre-tokenizers of byte-level BPE: the regex splits llama.cpp applies before BPE,
// written as hand matchers of each regex's alternatives over Unicode categories.
// A pre-tokenizer is a list of stages; each stage cuts every piece of the previous
// stage into its matches and the unmatched stretches between them (both are kept).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tactic {

enum class PreStage : uint8_t {
    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
    GPT2,
    // (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|
    // \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    LLAMA3,
    QWEN2,          // LLAMA3 with \p{N} (one digit) in place of \p{N}{1,3}
    // QWEN2 with marks joining letters: ...|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}|
    //  ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|...
    QWEN35,
    DIGIT,          // \p{N}
    DIGITS,         // \p{N}+
    ASCII_DIGITS3,  // [0-9][0-9][0-9]
    PUNCT_DEFAULT,  // [\p{P}\$\+<=>\^~\|]+
    PUNCT_FALCON,   // [\p{P}\$\+<=>\^~\|`]+
};

using ByteRange = std::pair<uint32_t, uint32_t>;  // [first, second) bytes of the text

class PreTokenizer {
public:
    PreTokenizer() = default;
    explicit PreTokenizer(std::vector<PreStage> stages) : stages_(std::move(stages)) {}

    // Appends the pieces of `text`, in order, as byte ranges; together they cover it.
    void split(std::string_view text, std::vector<ByteRange> &out) const;

private:
    std::vector<PreStage> stages_;
};

}  // namespace tactic
