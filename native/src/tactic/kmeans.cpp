#include "kmeans.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <random>

#include "../common.h"
#include "kernels.h"

namespace tactic {

namespace {

// Nearest centroid of n rows of X (f32, [n][D]); rows processed 4 at a time.
void assign_rows(const float *X, int n, int D, const float *C, const float *half_norm2, int n_c,
                 int32_t *assign_out, std::vector<float> &dots) {
    dots.resize(size_t(4) * n_c);
    for (int r0 = 0; r0 < n; r0 += 4) {
        const int rn = std::min(4, n - r0);
        if (rn == 4) {
            tk::dots4_f32(X + size_t(r0) * D, C, n_c, D, dots.data());
        } else {
            for (int r = 0; r < rn; r++) tk::dots1_f32(X + size_t(r0 + r) * D, C, n_c, D, dots.data() + size_t(r) * n_c);
        }
        for (int r = 0; r < rn; r++) {
            const float *dr = dots.data() + size_t(r) * n_c;
            int best = 0;
            float best_v = dr[0] - half_norm2[0];
            for (int c = 1; c < n_c; c++) {
                const float v = dr[c] - half_norm2[c];
                if (v > best_v) { best_v = v; best = c; }
            }
            assign_out[r0 + r] = best;
        }
    }
}

void compute_half_norm2(const std::vector<float> &C, int n_c, int D, std::vector<float> &out) {
    out.resize(size_t(n_c));
    for (int c = 0; c < n_c; c++) {
        double s = 0;
        for (int d = 0; d < D; d++) s += double(C[size_t(c) * D + d]) * C[size_t(c) * D + d];
        out[size_t(c)] = float(0.5 * s);
    }
}

}  // namespace

void KeyClusters::gather_keys(const uint16_t *K) {
    if (keys_valid) return;
    keys_sorted.resize(order.size() * size_t(D));
    for (size_t o = 0; o < order.size(); o++)
        std::copy_n(K + size_t(order[o]) * D, D, keys_sorted.data() + o * size_t(D));
    keys_valid = true;
}

void KeyClusters::rebuild_order() {
    keys_valid = false;
    offsets.assign(size_t(n_clusters) + 1, 0);
    for (int32_t c : cluster_of) offsets[size_t(c) + 1]++;
    for (int c = 0; c < n_clusters; c++) offsets[size_t(c) + 1] += offsets[size_t(c)];
    order.resize(cluster_of.size());
    std::vector<int32_t> fill(offsets.begin(), offsets.end() - 1);
    for (size_t i = 0; i < cluster_of.size(); i++) order[size_t(fill[size_t(cluster_of[i])]++)] = int32_t(begin + i);
}

void KeyClusters::assign_new(const uint16_t *K, int new_end) {
    if (new_end <= end || n_clusters == 0) return;
    const int n = new_end - end;
    std::vector<float> X(static_cast<size_t>(n) * D), dots;
    for (int i = 0; i < n; i++) tk::f16_to_f32_row(K + size_t(end + i) * D, X.data() + size_t(i) * D, D);
    cluster_of.resize(size_t(new_end - begin));
    assign_rows(X.data(), n, D, centroids.data(), half_norm2.data(), n_clusters, cluster_of.data() + (end - begin), dots);
    end = new_end;
    rebuild_order();
    gather_keys(K);
}

void KeyClusters::drop_from(int n_keep) {
    if (n_keep >= end) return;
    end = std::max(n_keep, begin);
    cluster_of.resize(size_t(end - begin));
    rebuild_order();
}

namespace {

// K-means over tokens [begin, end): centroids (non-empty clusters only, renumbered) and
// the cluster of each token.
void kmeans_range(const uint16_t *K, int D, int begin, int end, int cluster_size, int max_iter, uint64_t seed,
                  ThreadPool &pool, std::vector<float> &centroids, std::vector<int32_t> &cluster_of, int &n_out,
                  int &iterations) {
    const int n = end - begin;
    const int n_c = std::max(1, std::min(n, (n + cluster_size / 2) / cluster_size));

    std::vector<float> X(static_cast<size_t>(n) * D);
    pool.parallel_for(n, 256, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; i++) tk::f16_to_f32_row(K + size_t(begin + i) * D, X.data() + size_t(i) * D, D);
    });

    // Initial centroids: n_c distinct keys, uniformly sampled (partial Fisher-Yates).
    std::mt19937_64 rng(seed);
    std::vector<int32_t> idx(static_cast<size_t>(n));
    std::iota(idx.begin(), idx.end(), 0);
    std::vector<float> C(static_cast<size_t>(n_c) * D);
    for (int c = 0; c < n_c; c++) {
        const int j = c + int(rng() % uint64_t(n - c));
        std::swap(idx[size_t(c)], idx[size_t(j)]);
        std::copy_n(X.data() + size_t(idx[size_t(c)]) * D, D, C.data() + size_t(c) * D);
    }

    std::vector<int32_t> assign(static_cast<size_t>(n), -1), next(static_cast<size_t>(n));
    std::vector<float> hn2;
    std::vector<double> sums(static_cast<size_t>(n_c) * D);
    std::vector<int32_t> counts(static_cast<size_t>(n_c));
    const int n_threads = pool.size();
    std::vector<std::vector<float>> dots(static_cast<size_t>(n_threads));
    int it = 0;
    for (; it < std::max(1, max_iter); it++) {
        compute_half_norm2(C, n_c, D, hn2);
        std::atomic<int64_t> changed{0};
        // Rows handed out in chunks; each thread keeps its own dot buffer.
        std::atomic<int64_t> next_row{0};
        const int64_t grain = 64;
        auto work = [&](int ti) {
            int64_t local_changed = 0;
            for (;;) {
                const int64_t b = next_row.fetch_add(grain);
                if (b >= n) break;
                const int64_t e = std::min<int64_t>(n, b + grain);
                assign_rows(X.data() + size_t(b) * D, int(e - b), D, C.data(), hn2.data(), n_c, next.data() + b,
                            dots[size_t(ti)]);
                for (int64_t i = b; i < e; i++) local_changed += next[size_t(i)] != assign[size_t(i)];
            }
            changed += local_changed;
        };
        if (n <= 4 * grain) work(0);  // a small block: not worth waking the pool
        else pool.run([&](int ti, int) { work(ti); });
        assign.swap(next);
        if (changed.load() == 0) break;
        // Update: each centroid becomes the mean of its members; an empty cluster keeps
        // its centroid (it is dropped at the end if still empty).
        std::fill(sums.begin(), sums.end(), 0.0);
        std::fill(counts.begin(), counts.end(), 0);
        for (int i = 0; i < n; i++) {
            const int c = assign[size_t(i)];
            counts[size_t(c)]++;
            const float *x = X.data() + size_t(i) * D;
            double *s = sums.data() + size_t(c) * D;
            for (int d = 0; d < D; d++) s[d] += x[d];
        }
        for (int c = 0; c < n_c; c++) {
            if (!counts[size_t(c)]) continue;
            const double inv = 1.0 / counts[size_t(c)];
            for (int d = 0; d < D; d++) C[size_t(c) * D + d] = float(sums[size_t(c) * D + d] * inv);
        }
    }
    iterations = std::min(it + 1, std::max(1, max_iter));

    // Keep the non-empty clusters only, renumbered.
    std::vector<int32_t> remap(static_cast<size_t>(n_c), -1);
    std::vector<int32_t> member(static_cast<size_t>(n_c), 0);
    for (int32_t c : assign) member[size_t(c)] = 1;
    int k = 0;
    for (int c = 0; c < n_c; c++)
        if (member[size_t(c)]) remap[size_t(c)] = k++;
    n_out = k;
    centroids.resize(size_t(k) * D);
    for (int c = 0; c < n_c; c++)
        if (remap[size_t(c)] >= 0)
            std::copy_n(C.data() + size_t(c) * D, D, centroids.data() + size_t(remap[size_t(c)]) * D);
    cluster_of.resize(size_t(n));
    for (int i = 0; i < n; i++) cluster_of[size_t(i)] = remap[size_t(assign[size_t(i)])];
}

}  // namespace

KeyClusters cluster_keys(const uint16_t *K, int D, int begin, int end, int cluster_size, int max_iter,
                         uint64_t seed, ThreadPool &pool) {
    TACTIC_CHECK(D > 0 && begin >= 0 && end > begin && cluster_size > 0, TACTIC_ERR_INVALID_ARGUMENT,
                 "cluster_keys: bad range or cluster size");
    KeyClusters kc;
    kc.begin = begin;
    kc.end = kc.base_end = end;
    kc.D = D;
    kmeans_range(K, D, begin, end, cluster_size, max_iter, seed, pool, kc.centroids, kc.cluster_of, kc.n_clusters,
                 kc.iterations);
    compute_half_norm2(kc.centroids, kc.n_clusters, D, kc.half_norm2);
    kc.rebuild_order();
    kc.gather_keys(K);
    return kc;
}

KeyClusters empty_blocks(int D, int begin) {
    KeyClusters kc;
    kc.begin = kc.end = kc.base_end = begin;
    kc.D = D;
    kc.offsets.assign(1, 0);
    kc.keys_valid = true;
    return kc;
}

void KeyClusters::append_block(const uint16_t *K, int new_end, int cluster_size, int max_iter, uint64_t seed,
                               ThreadPool &pool) {
    TACTIC_CHECK(new_end > end && D > 0, TACTIC_ERR_INTERNAL, "append_block: empty block");
    std::vector<float> cent;
    std::vector<int32_t> ids;
    int k = 0, iters = 0;
    kmeans_range(K, D, end, new_end, cluster_size, max_iter, seed, pool, cent, ids, k, iters);
    const int c0 = n_clusters;
    centroids.insert(centroids.end(), cent.begin(), cent.end());
    std::vector<float> hn;
    compute_half_norm2(cent, k, D, hn);
    half_norm2.insert(half_norm2.end(), hn.begin(), hn.end());
    // The block's clusters come after every older one, so its tokens go at the end of
    // `order` (counting sort inside the block) and only its keys are copied.
    std::vector<int32_t> cnt(static_cast<size_t>(k) + 1, 0);
    for (int32_t c : ids) cnt[size_t(c) + 1]++;
    for (int c = 0; c < k; c++) cnt[size_t(c) + 1] += cnt[size_t(c)];
    const size_t o0 = order.size();
    if (offsets.empty()) offsets.assign(1, 0);
    for (int c = 1; c <= k; c++) offsets.push_back(int32_t(o0) + cnt[size_t(c)]);
    order.resize(o0 + ids.size());
    std::vector<int32_t> fill(cnt.begin(), cnt.end() - 1);
    for (size_t i = 0; i < ids.size(); i++) order[o0 + size_t(fill[size_t(ids[i])]++)] = int32_t(end + int(i));
    for (int32_t c : ids) cluster_of.push_back(c0 + c);
    keys_sorted.resize(order.size() * size_t(D));
    for (size_t o = o0; o < order.size(); o++) std::copy_n(K + size_t(order[o]) * D, D, keys_sorted.data() + o * size_t(D));
    keys_valid = true;
    n_clusters += k;
    end = base_end = new_end;
    block_tok_end.push_back(new_end);
    block_cluster_end.push_back(n_clusters);
    iterations = std::max(iterations, iters);
}

void KeyClusters::drop_blocks_after(int limit) {
    size_t nb = block_tok_end.size();
    while (nb > 0 && block_tok_end[nb - 1] > limit) nb--;
    if (nb == block_tok_end.size()) return;
    block_tok_end.resize(nb);
    block_cluster_end.resize(nb);
    n_clusters = nb ? block_cluster_end[nb - 1] : 0;
    end = base_end = nb ? block_tok_end[nb - 1] : begin;
    centroids.resize(size_t(n_clusters) * D);
    half_norm2.resize(size_t(n_clusters));
    offsets.resize(size_t(n_clusters) + 1);
    order.resize(size_t(offsets.back()));
    keys_sorted.resize(order.size() * size_t(D));
    cluster_of.resize(size_t(end - begin));
}

}  // namespace tactic
