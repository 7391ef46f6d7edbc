// SentencePiece-style merging ("llama" vocabularies), FORMATS §4.2: start from the
// UTF-8 characters, repeatedly merge the adjacent pair whose concatenation is the
// highest-scoring token, and fall back to <0xHH> byte tokens for leftovers.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "vocab.h"

namespace tactic {

class SpmTokenizer {
public:
    explicit SpmTokenizer(const Vocab &vocab);
    // `text` is already escaped (spaces as U+2581). Appends the ids to out.
    void tokenize(std::string_view text, std::vector<int32_t> &out) const;

private:
    const Vocab &vocab_;
    std::array<int32_t, 256> byte_token_;  // byte fallback: <0xHH>, else the 1-byte text, else -1
};

}  // namespace tactic
