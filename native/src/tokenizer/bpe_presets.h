// What tokenizer.ggml.pre means for a byte-level BPE vocabulary: the pre-tokenizer
// stages and the flags llama.cpp sets with it (llama-vocab.cpp's pre-type table).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "pretokenize.h"

namespace tactic {

struct BpePreset {
    std::vector<PreStage> stages;
    bool ignore_merges = false;
    bool add_bos = false;
    bool clean_spaces = true;
    bool no_bos = false;  // the pre-tokenizer's model has no BOS by default
};

// The preset of a pre name ("" = llama.cpp's degraded default), or nullopt if unknown.
std::optional<BpePreset> bpe_preset(const std::string &pre);

}  // namespace tactic
