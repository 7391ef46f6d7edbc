// The first step of tokenizing: cut the texts of special tokens out of the input
// (FORMATS §4.1). Each occurrence becomes its own token; the raw stretches between
// them are tokenized separately.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "vocab.h"

namespace tactic {

struct Fragment {
    int32_t token;  // >= 0: this special token; -1: raw text [offset, offset + length)
    uint32_t offset, length;
};

// Tokens are taken one at a time, longest text first, each cutting every remaining
// raw fragment at each of its occurrences, left to right. Without parse_special only
// user-defined tokens are cut out; unknown and control texts stay plain text.
std::vector<Fragment> split_special(std::string_view text, const Vocab &vocab, bool parse_special);

}  // namespace tactic
