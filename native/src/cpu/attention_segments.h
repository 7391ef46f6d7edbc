// Decode attention over keys held in one or two slot ranges of a cache head (a
// sliding-window ring wraps), in position order.
#pragma once

#include <cstdint>

#include "../threadpool.h"

namespace tactic {

// out[n_q][D] = softmax(q K^T) V over the rows [seg[2i], seg[2i+1]) for i < n_seg (1 or 2).
// One range is attention_split itself (split across threads); two are folded in order.
void attention_segments(const float *q, int n_q, int D, const uint16_t *K, const uint16_t *V, const int *seg,
                        int n_seg, float *out, ThreadPool &pool);

}  // namespace tactic
