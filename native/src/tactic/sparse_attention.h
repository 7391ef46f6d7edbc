// Exact softmax attention of a GQA group's query heads over a list of cached tokens.
// Work is split along the list (chunks merged with their running max), so uneven
// selections still spread over all threads; everything accumulates in f32 with a
// max-subtracted softmax, as full attention does.
#pragma once

#include <cstdint>
#include <vector>

#include "../cpu/attention.h"
#include "../threadpool.h"

namespace tactic {

struct AttnScratch {
    std::vector<SoftmaxPartial> parts;  // one per chunk of the list
};

// out[h*D ..] = sum_i softmax_i(Q[h] . K[list[i]]) V[list[i]] for h < g.
// K, V: one KV head's rows, token t at K + t*D (f16). Q is already scaled.
// extra (optional): one more partial softmax of the g heads merged in before normalising
// (the estimated share of the tokens not in the list, tail_estimate.h).
void attend_group(const float *Q, int g, const uint16_t *K, const uint16_t *V, int D, const int32_t *list, int n,
                  float *out, ThreadPool &pool, AttnScratch &scratch, const SoftmaxPartial *extra = nullptr);

// S[h*n + i] = Q[h] . K[list[i]] (list == nullptr: tokens 0..n-1).
void scores_group(const float *Q, int g, const uint16_t *K, int D, const int32_t *list, int n, float *S,
                  ThreadPool &pool);

}  // namespace tactic
