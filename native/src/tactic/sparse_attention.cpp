#include "sparse_attention.h"

#include <algorithm>
#include <cmath>

#include "kernels.h"

namespace tactic {

namespace {
constexpr int kChunk = 256;  // tokens per work item
}

void attend_group(const float *Q, int g, const uint16_t *K, const uint16_t *V, int D, const int32_t *list, int n,
                  float *out, ThreadPool &pool, AttnScratch &scratch) {
    std::fill(out, out + size_t(g) * D, 0.f);
    if (n <= 0) return;
    const int n_chunks = (n + kChunk - 1) / kChunk;
    const size_t part_size = size_t(g) * (2 + D);
    scratch.part.resize(size_t(n_chunks) * part_size);
    scratch.scores.resize(size_t(n_chunks) * g * kChunk);
    pool.parallel_for(n_chunks, 1, [&](int64_t cb, int64_t ce) {
        for (int64_t ci = cb; ci < ce; ci++) {
            const int i0 = int(ci) * kChunk, len = std::min(kChunk, n - i0);
            float *mx = scratch.part.data() + size_t(ci) * part_size, *sum = mx + g, *acc = sum + g;
            float *S = scratch.scores.data() + size_t(ci) * g * kChunk;  // [i][h]
            for (int h = 0; h < g; h++) mx[h] = -INFINITY;
            for (int i = 0; i < len; i++) {
                tk::dots_group_f16(Q, g, K + size_t(list[i0 + i]) * D, D, S + size_t(i) * g);
                for (int h = 0; h < g; h++) mx[h] = std::max(mx[h], S[size_t(i) * g + h]);
            }
            std::fill(acc, acc + size_t(g) * D, 0.f);
            for (int h = 0; h < g; h++) sum[h] = 0.f;
            for (int i = 0; i < len; i++) {
                float *w = S + size_t(i) * g;
                for (int h = 0; h < g; h++) {
                    w[h] = std::exp(w[h] - mx[h]);
                    sum[h] += w[h];
                }
                tk::axpy_group_f16(w, g, V + size_t(list[i0 + i]) * D, D, acc);
            }
        }
    });
    // Merge the chunks: rescale each by exp(its max - the global max).
    for (int h = 0; h < g; h++) {
        float M = -INFINITY;
        for (int c = 0; c < n_chunks; c++) M = std::max(M, scratch.part[size_t(c) * part_size + h]);
        double total = 0;
        float *o = out + size_t(h) * D;
        for (int c = 0; c < n_chunks; c++) {
            const float *p = scratch.part.data() + size_t(c) * part_size;
            const float scale = std::exp(p[h] - M);
            total += double(p[g + h]) * scale;
            const float *acc = p + 2 * g + size_t(h) * D;
            for (int d = 0; d < D; d++) o[d] += scale * acc[d];
        }
        const float inv = total > 0 ? float(1.0 / total) : 0.f;
        for (int d = 0; d < D; d++) o[d] *= inv;
    }
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
