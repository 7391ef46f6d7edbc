#include "sparse_attention.h"

#include <algorithm>
#include <cmath>

#include "../cpu/attention.h"
#include "kernels.h"

namespace tactic {

void attend_group(const float *Q, int g, const uint16_t *K, const uint16_t *V, int D, const int32_t *list, int n,
                  float *out, ThreadPool &pool, AttnScratch &scratch, const SoftmaxPartial *extra) {
    std::fill(out, out + size_t(g) * D, 0.f);
    if (n <= 0) return;
    // The forward pass's own kernel (attend_chunk) over chunks of the list, merged by
    // their running max. The chunk size is attention_split's, so over all tokens the
    // result is the forward pass's to the bit (its f16 rounding of softmax weights
    // depends on the chunk boundaries).
    const int chunk = kAttnChunk;
    const int n_chunks = (n + chunk - 1) / chunk;
    if (int(scratch.parts.size()) < n_chunks) scratch.parts.resize(size_t(n_chunks));
    pool.parallel_for(n_chunks, 1, [&](int64_t cb, int64_t ce) {
        thread_local std::vector<float> tile;
        for (int64_t c = cb; c < ce; c++) {
            const int j0 = int(c) * chunk, j1 = std::min(n, j0 + chunk);
            attend_chunk(Q, g, D, K, V, KeyMap{list, 0}, j0, j1, scratch.parts[size_t(c)], tile);
        }
    });
    for (int c = 1; c < n_chunks; c++) scratch.parts[0].merge(scratch.parts[size_t(c)], g, D);
    if (extra) scratch.parts[0].merge(*extra, g, D);
    scratch.parts[0].finish(out, g, D);
}

void scores_group(const float *Q, int g, const uint16_t *K, int D, const int32_t *list, int n, float *S,
                  ThreadPool &pool) {
    pool.parallel_for(n, 512, [&](int64_t b, int64_t e) {
        float tmp[64];
        for (int64_t i = b; i < e; i++) {
            const int t = list ? list[i] : int(i);
            for (int h0 = 0; h0 < g; h0 += 64) {
                const int gn = std::min(64, g - h0);
                tk::dots_group_f16(Q + size_t(h0) * D, gn, K + size_t(t) * D, D, tmp);
                for (int h = 0; h < gn; h++) S[size_t(h0 + h) * n + i] = tmp[h];
            }
        }
    });
}

}  // namespace tactic
