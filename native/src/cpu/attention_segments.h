// Attention over keys held in one or two slot ranges of a cache head (a sliding-window
// ring wraps), in position order. Two ranges are read through a list of their rows, so
// that tiles and chunks fall on the same positions as over a flat cache: the results are
// bit-identical to attention_split over a flat cache.
#pragma once

#include <cstdint>
#include <vector>

#include "../threadpool.h"
#include "attention.h"

namespace tactic {

// Positions pos0 .. pos0 + size held in the slot ranges [seg[2i], seg[2i+1]) for i < n_seg
// (1 or 2), in position order: their KeyMap (two ranges through a list of their rows,
// kept in `rows`), and how many there are.
KeyMap segments_map(const int *seg, int n_seg, int pos0, std::vector<int32_t> &rows);
int segments_size(const int *seg, int n_seg);

// out[n_q][D] = attention over those positions, on the calling thread (prefill, one token).
void attend_segments(const float *q, int n_q, int D, const uint16_t *K, const uint16_t *V, const int *seg, int n_seg,
                     int pos0, float *out);

// The same, split across threads as attention_split (decode).
void attention_segments(const float *q, int n_q, int D, const uint16_t *K, const uint16_t *V, const int *seg,
                        int n_seg, int pos0, float *out, ThreadPool &pool);

}  // namespace tactic
