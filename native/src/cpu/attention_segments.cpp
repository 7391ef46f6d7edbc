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

void attend_segments(const float *q, int n_q, int D, const uint16_t *K, const uint16_t *V, const int *seg, int n_seg,
                     float *out) {
    if (n_seg == 1) return attention_chunked(q, n_q, D, K, V, nullptr, seg[0], seg[1], out);
    thread_local std::vector<int32_t> rows;
    row_list(seg, n_seg, rows);
    attention_chunked(q, n_q, D, K, V, rows.data(), 0, int(rows.size()), out);
}

void attention_segments(const float *q, int n_q, int D, const uint16_t *K, const uint16_t *V, const int *seg,
                        int n_seg, float *out, ThreadPool &pool) {
    if (n_seg == 1) {
        attention_split(q, n_q, D, K, V, seg[0], seg[1], out, pool);
        return;
    }
    // attention_split's chunking, over the row list.
    std::vector<int32_t> rows;
    row_list(seg, n_seg, rows);
    const int n = int(rows.size());
    const int n_chunks = std::max(1, (n + kAttnChunk - 1) / kAttnChunk);
    std::vector<SoftmaxPartial> parts(static_cast<size_t>(n_chunks));
    pool.parallel_for(n_chunks, 1, [&](int64_t b, int64_t e) {
        thread_local std::vector<float> scratch;
        for (int64_t c = b; c < e; c++) {
            const int j0 = int(c) * kAttnChunk, j1 = std::min(n, j0 + kAttnChunk);
            attend_chunk(q, n_q, D, K, V, rows.data(), j0, j1, parts[size_t(c)], scratch);
        }
    });
    for (int c = 1; c < n_chunks; c++) parts[0].merge(parts[size_t(c)], n_q, D);
    parts[0].finish(out, n_q, D);
}

}  // namespace tactic
