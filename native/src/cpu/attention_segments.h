// Attention over keys held in one or two slot ranges of a cache head (a sliding-window
// ring wraps), in position order. Two ranges are read through a list of their rows, so
// that tiles and chunks fall on the same keys as over a flat cache: the results are
// bit-identical to attention_split over the same positions.
#pragma once

#include <cstdint>
#include <vector>

#include "../threadpool.h"
#include "attention.h"

namespace tactic {

// out[n_q][D] = attention over the rows [seg[2i], seg[2i+1]) for i < n_seg (1 or 2), on the
// calling thread (prefill, one token): the bytes attention_segments gives.
void attend_segments(const float *q, int n_q, int D, const uint16_t *K, const uint16_t *V, const int *seg, int n_seg,
                     float *out);

// out[n_q][D] = softmax(q K^T) V over those rows, split across threads as attention_split (decode).
void attention_segments(const float *q, int n_q, int D, const uint16_t *K, const uint16_t *V, const int *seg,
                        int n_seg, float *out, ThreadPool &pool);

}  // namespace tactic
