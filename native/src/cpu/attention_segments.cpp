#include "attention_segments.h"

#include <algorithm>

namespace tactic {

namespace {
// The rows of the ranges in order.
void row_list(const int *seg, int n_seg, std::vector<int32_t> &rows) {
    rows.clear();
    for (int s = 0; s < n_seg; s++)
        for (int r = seg[2 * s]; r < seg[2 * s + 1]; r++) rows.push_back(r);
}
}  // namespace

int segments_size(const int *seg, int n_seg) {
    int n = 0;
    for (int s = 0; s < n_seg; s++) n += seg[2 * s + 1] - seg[2 * s];
    return n;
}

KeyMap segments_map(const int *seg, int n_seg, int pos0, std::vector<int32_t> &rows) {
    if (n_seg == 1) return KeyMap{nullptr, seg[0] - pos0};
    row_list(seg, n_seg, rows);
    return KeyMap{rows.data(), pos0};
}

void attend_segments(const float *q, int n_q, int D, const uint16_t *K, const uint16_t *V, const int *seg, int n_seg,
                     int pos0, float *out) {
    thread_local std::vector<int32_t> rows;
    const KeyMap map = segments_map(seg, n_seg, pos0, rows);
    attention_chunked(q, n_q, D, K, V, map, pos0, pos0 + segments_size(seg, n_seg), out);
}

void attention_segments(const float *q, int n_q, int D, const uint16_t *K, const uint16_t *V, const int *seg,
                        int n_seg, int pos0, float *out, ThreadPool &pool) {
    std::vector<int32_t> rows;
    const KeyMap map = segments_map(seg, n_seg, pos0, rows);
    attention_split(q, n_q, D, K, V, map, pos0, pos0 + segments_size(seg, n_seg), out, pool);
}

}  // namespace tactic
