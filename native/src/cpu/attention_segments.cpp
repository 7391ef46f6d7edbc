#include "attention_segments.h"

#include <vector>

#include "attention.h"

namespace tactic {

void attention_segments(const float *q, int n_q, int D, const uint16_t *K, const uint16_t *V, const int *seg,
                        int n_seg, float *out, ThreadPool &pool) {
    if (n_seg == 1) {
        attention_split(q, n_q, D, K, V, seg[0], seg[1], out, pool);
        return;
    }
    // A wrapped ring holds at most window + n_batch keys: one thread is enough.
    thread_local std::vector<float> scratch;
    SoftmaxPartial part;
    part.reset(n_q, D);
    for (int s = 0; s < n_seg; s++) attend_rows(q, n_q, D, K, V, nullptr, seg[2 * s], seg[2 * s + 1], part, scratch);
    part.finish(out, n_q, D);
}

}  // namespace tactic
