// Token sampling: greedy, temperature, top-k, top-p, min-p, repetition / presence /
// frequency penalties; a seeded generator makes runs reproducible.
//
// The order of the steps follows llama.cpp's default chain:
//   penalties -> top-k -> top-p -> min-p -> temperature -> draw
// (temperature <= 0: penalties -> argmax). top-p and min-p look at the
// probabilities before temperature, as llama.cpp's do.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <unordered_map>
#include <vector>

#include "tactic.h"

namespace tactic {

class Sampler {
public:
    explicit Sampler(const tactic_sampler_params &params);  // validates; throws Error
    // mask: NULL, or one bit per token (bit i%32 of word i/32; 1 = allowed). Masked
    // tokens are removed before every other step, so penalties, top-k/p, min-p and
    // temperature act on the allowed tokens only.
    int32_t sample(const float *logits, int32_t n_vocab, const uint32_t *mask = nullptr);
    void accept(int32_t token);
    void reset();  // forgets the history and restarts the generator from the seed

    // Throws Error(INVALID_ARGUMENT) naming the first bad field.
    static void validate(const tactic_sampler_params &params);

private:
    bool has_penalties() const;
    void apply_penalties(float *logits, int32_t n_vocab) const;
    // Keeps the first n candidates of cand_ after sorting them by logit, descending.
    void sort_top(size_t n);
    double uniform();  // [0, 1), the same on every platform for a seed

    tactic_sampler_params p_;
    std::mt19937_64 rng_;
    std::deque<int32_t> history_;                  // the penalty window
    std::unordered_map<int32_t, int32_t> counts_;  // token -> occurrences in history_
    std::vector<float> work_;                      // penalised logits
    std::vector<std::pair<float, int32_t>> cand_;  // (logit, token) candidates
    std::vector<float> probs_;                     // unnormalised probabilities of cand_
    size_t n_sorted_ = 0;                          // cand_[0, n_sorted_) is sorted descending
};

}  // namespace tactic
