// Byte-level BPE ("gpt2" vocabularies), FORMATS §4.4: the merges of
// tokenizer.ggml.merges applied to one pre-tokenized, byte-level-encoded word,
// lowest rank first.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "vocab.h"

namespace tactic {

class GGUFFile;

class BpeTokenizer {
public:
    // Reads tokenizer.ggml.merges. ignore_merges: a word that is a token as a whole
    // is emitted without merging (llama-bpe).
    BpeTokenizer(const Vocab &vocab, const GGUFFile &file, bool ignore_merges);
    // `word` is byte-level encoded. Appends its ids to out.
    void tokenize_word(std::string_view word, std::vector<int32_t> &out) const;
    size_t n_merges() const { return pairs_.size(); }

private:
    struct Merge {
        int32_t rank;
        int32_t result;  // symbol id of left + right
    };
    // Symbols are token ids, plus ids >= n_vocab for merge parts that are not tokens.
    int32_t symbol(std::string_view s) const;
    int32_t intern(const std::string &s);
    static uint64_t pair_key(int32_t l, int32_t r) { return (uint64_t(uint32_t(l)) << 32) | uint32_t(r); }

    const Vocab &vocab_;
    bool ignore_merges_;
    std::unordered_map<uint64_t, Merge> pairs_;
    std::deque<std::string> extra_text_;  // deque: stable addresses for the views below
    std::unordered_map<std::string_view, int32_t> extra_;
};

}  // namespace tactic
