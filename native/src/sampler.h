// Token sampling: greedy, temperature, top-k, top-p, min-p, repetition / presence /
// frequency penalties; a seeded generator makes runs reproducible.
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
    int32_t sample(const float *logits, int32_t n_vocab);
    void accept(int32_t token);
    void reset();

private:
    tactic_sampler_params p_;
    std::mt19937_64 rng_;
    std::deque<int32_t> history_;
    std::vector<std::pair<float, int32_t>> scratch_;
};

}  // namespace tactic
