#include "bounded_selection.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "../common.h"
#include "kernels.h"

namespace tactic {

namespace {

// Strata over the tail (shares of its tokens, in the head's cluster order): finer near the
// top, where the largest unscored weights are.
constexpr double kStrataEdges[] = {0.0, 1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0 / 2, 1.0};
constexpr int kMaxStrata = 6;

int cluster_len(const KeyClusters &kc, int c) { return kc.offsets[size_t(c) + 1] - kc.offsets[size_t(c)]; }

}  // namespace

void select_bounded(const float *Qg, int g, const uint16_t *K, int D, const KeyClusters &kc, const float *cscores,
                    const std::vector<int32_t> &always, const float *always_scores, int n_tokens,
                    const BoundedConfig &cfg, ThreadPool &pool, BoundedScratch &scr, BoundedGroup &out) {
    (void)K;
    const int C = kc.n_clusters;
    const int n_always = int(always.size());
    const bool force = cfg.force_fraction > 0.f;
    const bool take_all = !force && cfg.p >= 1.f;
    // In float, as the caller wrote f (0.1f * 4000 is 400, not 400.000006).
    const int force_count = force ? std::min(n_tokens, int(std::ceil(cfg.force_fraction * float(n_tokens)))) : 0;
    out.heads.resize(size_t(g));
    out.rounds = 0;
    scr.osc.resize(kc.order.size() * size_t(g));
    scr.scored.assign(size_t(C), 0);
    scr.corder.resize(size_t(g));
    scr.prefix.assign(size_t(g), 0);

    // 1. Cluster order per head, and the first prefix: clusters until the centroid proxy
    // (size x exp(q . centroid)) reaches 1 - (1 - p) / 4 of its total (it underestimates
    // spread clusters, which the tail bound then catches), or the forced count.
    std::vector<int> prefix_tokens(static_cast<size_t>(g), 0);
    for (int h = 0; h < g; h++) {
        auto &ord = scr.corder[size_t(h)];
        const float *cs = cscores + size_t(h) * C;
        ord.resize(size_t(C));
        std::iota(ord.begin(), ord.end(), 0);
        std::sort(ord.begin(), ord.end(), [&](int32_t x, int32_t y) { return cs[x] > cs[y] || (cs[x] == cs[y] && x < y); });
        int j = 0, tok = 0;
        if (take_all) {
            j = C;
            tok = kc.size();
        } else if (force) {
            while (j < C && tok < force_count) tok += cluster_len(kc, ord[size_t(j++)]);
        } else if (C > 0) {
            const float mx = cs[ord[0]];
            double W = 0;
            for (int c = 0; c < C; c++) W += cluster_len(kc, c) * std::exp(double(cs[c]) - mx);
            const double pc = cfg.init_proxy_share > 0 ? cfg.init_proxy_share : 1.0 - (1.0 - cfg.p) / 4.0;
            double cum = 0;
            while (j < C && (cum < pc * W || tok < cfg.min_init_tokens)) {
                const int c = ord[size_t(j++)];
                cum += cluster_len(kc, c) * std::exp(double(cs[c]) - mx);
                tok += cluster_len(kc, c);
            }
        }
        scr.prefix[size_t(h)] = j;
        prefix_tokens[size_t(h)] = tok;
    }

    // Running max and exact sum per head over everything scored so far (always-kept first).
    std::vector<float> m(static_cast<size_t>(g), -INFINITY);
    std::vector<double> exact(static_cast<size_t>(g), 0.0);
    for (int h = 0; h < g; h++) {
        const float *as = always_scores + size_t(h) * n_always;
        for (int i = 0; i < n_always; i++) m[size_t(h)] = std::max(m[size_t(h)], as[i]);
    }
    for (int h = 0; h < g; h++) {
        if (!std::isfinite(m[size_t(h)])) continue;
        const float *as = always_scores + size_t(h) * n_always;
        for (int i = 0; i < n_always; i++) exact[size_t(h)] += std::exp(double(as[i]) - m[size_t(h)]);
    }
    std::vector<double> tail_point(static_cast<size_t>(g), 0.0), tail_bound(static_cast<size_t>(g), 0.0);
    int n_scored = n_always;
    std::vector<int32_t> tail_c;
    std::vector<int> tail_cum;

    for (int round = 0;; round++) {
        out.rounds = round + 1;
        // 2. Score the clusters newly proposed by any head, for all heads at once.
        scr.new_clusters.clear();
        for (int h = 0; h < g; h++)
            for (int j = 0; j < scr.prefix[size_t(h)]; j++) {
                const int c = scr.corder[size_t(h)][size_t(j)];
                if (!scr.scored[size_t(c)]) {
                    scr.scored[size_t(c)] = 1;
                    scr.new_clusters.push_back(c);
                }
            }
        score_clusters_group(Qg, g, kc, D, scr.new_clusters, scr.osc.data(), pool);
        for (int h = 0; h < g; h++) {
            float mh = m[size_t(h)];
            for (int c : scr.new_clusters)
                for (int o = kc.offsets[size_t(c)]; o < kc.offsets[size_t(c) + 1]; o++)
                    mh = std::max(mh, scr.osc[size_t(o) * g + h]);
            if (mh > m[size_t(h)]) {  // rescale the running sum to the new reference
                exact[size_t(h)] = std::isfinite(m[size_t(h)]) ? exact[size_t(h)] * std::exp(double(m[size_t(h)]) - mh) : 0.0;
                m[size_t(h)] = mh;
            }
            for (int c : scr.new_clusters)
                for (int o = kc.offsets[size_t(c)]; o < kc.offsets[size_t(c) + 1]; o++)
                    exact[size_t(h)] += std::exp(double(scr.osc[size_t(o) * g + h]) - mh);
        }
        for (int c : scr.new_clusters) n_scored += cluster_len(kc, c);
        if (force || take_all) break;

        // 3. Tail bound per head from stratified samples of the clusters nobody scored.
        bool all_ok = true;
        std::vector<uint8_t> grow(static_cast<size_t>(g), 0);
        for (int h = 0; h < g; h++) {
            tail_c.clear();
            tail_cum.assign(1, 0);
            for (int32_t c : scr.corder[size_t(h)])
                if (!scr.scored[size_t(c)]) {
                    tail_c.push_back(c);
                    tail_cum.push_back(tail_cum.back() + cluster_len(kc, c));
                }
            const int T = tail_cum.back();
            double point = 0, var = 0;
            const float *q = Qg + size_t(h) * D;
            const float mh = std::isfinite(m[size_t(h)]) ? m[size_t(h)] : 0.f;
            auto weight_at = [&](int pos) {  // pos: 0-based position in the tail sequence
                const size_t k = size_t(std::upper_bound(tail_cum.begin(), tail_cum.end(), pos) - tail_cum.begin()) - 1;
                const int o = kc.offsets[size_t(tail_c[k])] + (pos - tail_cum[k]);
                float s;
                tk::dots_group_f16(q, 1, kc.key_in_order(o), D, &s);
                return std::exp(double(s) - mh);
            };
            const int J = std::min(cfg.n_strata, kMaxStrata);
            for (int sj = 0; sj < J && T > 0; sj++) {
                const double e0 = sj == 0 ? 0.0 : kStrataEdges[kMaxStrata - J + sj];
                const int lo = int(std::floor(e0 * T));
                const int hi = sj == J - 1 ? T : int(std::floor(kStrataEdges[kMaxStrata - J + sj + 1] * T));
                const int N = hi - lo;
                if (N <= 0) continue;
                if (N <= cfg.samples_per_stratum) {  // small: exact
                    for (int pos = lo; pos < hi; pos++) point += weight_at(pos);
                    continue;
                }
                const int n = cfg.samples_per_stratum;
                double s1 = 0, s2 = 0;
                for (int i = 0; i < n; i++) {
                    const double w = weight_at(lo + int(scr.rng() % uint64_t(N)));
                    s1 += w;
                    s2 += w * w;
                }
                const double mean = s1 / n;
                const double sv = std::max(0.0, (s2 - n * mean * mean) / (n - 1));
                point += N * mean;
                var += double(N) * N * sv / n;
            }
            // Growth looks at mean + z se; the bound used for the target also takes the
            // point estimate twice (the sample of a skewed tail misses its rare heavy
            // tokens more often than a normal error would: measured at 8K, z alone left
            // 8% of head-steps just short of P).
            const double se = std::sqrt(var);
            tail_point[size_t(h)] = point;
            tail_bound[size_t(h)] = cfg.tail_point_factor * point + double(cfg.z) * se;
            const double grow_bound = point + double(cfg.z) * se;
            const double eps = double(cfg.tail_share) * (1.0 - double(cfg.p));
            if (T > 0 && grow_bound > eps * (exact[size_t(h)] + grow_bound)) {
                all_ok = false;
                grow[size_t(h)] = 1;
            }
        }
        if (all_ok) break;
        if (round + 1 >= cfg.max_rounds) {
            // Out of rounds: if some head's candidates cannot reach P of its estimated
            // total, score everything (the total is then exact and P reached).
            bool short_of_p = false;
            for (int h = 0; h < g; h++)
                short_of_p |= exact[size_t(h)] < bounded_target_share(cfg) * (exact[size_t(h)] + tail_bound[size_t(h)]);
            if (!short_of_p || round + 1 > cfg.max_rounds) break;
            for (int h = 0; h < g; h++) scr.prefix[size_t(h)] = C;
            std::fill(tail_point.begin(), tail_point.end(), 0.0);
            std::fill(tail_bound.begin(), tail_bound.end(), 0.0);
            continue;
        }
        // 4. Heads whose tail is too heavy double their prefix.
        for (int h = 0; h < g; h++) {
            if (!grow[size_t(h)]) continue;
            int &j = scr.prefix[size_t(h)];
            const int want = 2 * std::max(prefix_tokens[size_t(h)], cfg.min_init_tokens);
            while (j < C && prefix_tokens[size_t(h)] < want)
                prefix_tokens[size_t(h)] += cluster_len(kc, scr.corder[size_t(h)][size_t(j++)]);
        }
    }
    out.n_scored = n_scored;

    // 5. Per head: keep by decreasing exact score until p + margin (1 - p) of (exact + tail bound).
    pool.parallel_for(g, 1, [&](int64_t hb, int64_t he) {
        std::vector<std::pair<double, int32_t>> items;
        for (int64_t h = hb; h < he; h++) {
            BoundedHead &bh = out.heads[size_t(h)];
            const float mh = std::isfinite(m[size_t(h)]) ? m[size_t(h)] : 0.f;
            items.clear();
            const float *as = always_scores + size_t(h) * n_always;
            for (int i = 0; i < n_always; i++) items.emplace_back(std::exp(double(as[i]) - mh), always[size_t(i)]);
            for (int c = 0; c < C; c++) {
                if (!scr.scored[size_t(c)]) continue;
                for (int o = kc.offsets[size_t(c)]; o < kc.offsets[size_t(c) + 1]; o++)
                    items.emplace_back(std::exp(double(scr.osc[size_t(o) * g + h]) - mh), kc.order[size_t(o)]);
            }
            const double Z = exact[size_t(h)] + tail_bound[size_t(h)];
            const double target = bounded_target_share(cfg) * Z;
            bh.kept.clear();
            double cum = 0;
            if (take_all || int(items.size()) <= (force ? force_count : 0)) {
                for (const auto &it : items) {
                    bh.kept.push_back(it.second);
                    cum += it.first;
                }
            } else if (force) {
                // The force_count heaviest (order inside the kept set does not matter).
                std::nth_element(items.begin(), items.begin() + (force_count - 1), items.end(),
                                 [](const auto &x, const auto &y) { return x.first > y.first || (x.first == y.first && x.second < y.second); });
                for (int i = 0; i < force_count; i++) {
                    bh.kept.push_back(items[size_t(i)].second);
                    cum += items[size_t(i)].first;
                }
            } else {
                // Heaviest first until the target, without a full sort: weights binned by
                // -log(w) (bins of 1/8), whole bins taken until the one where the target is
                // crossed, which alone is sorted.
                constexpr int kBins = 256;
                constexpr double kPerNat = 8.0;
                double bin_sum[kBins] = {};
                auto bin_of = [&](double w) {
                    const double nl = w > 0 ? -std::log(w) * kPerNat : double(kBins);
                    return nl <= 0 ? 0 : std::min(kBins - 1, int(nl));
                };
                for (const auto &it : items) bin_sum[bin_of(it.first)] += it.first;
                int cross = kBins - 1;
                double before = 0;
                for (int bi = 0; bi < kBins; bi++) {
                    if (before + bin_sum[bi] >= target) {
                        cross = bi;
                        break;
                    }
                    before += bin_sum[bi];
                }
                std::vector<std::pair<double, int32_t>> edge;
                for (const auto &it : items) {
                    const int bi = bin_of(it.first);
                    if (bi < cross) {
                        bh.kept.push_back(it.second);
                        cum += it.first;
                    } else if (bi == cross) {
                        edge.push_back(it);
                    }
                }
                std::sort(edge.begin(), edge.end(),
                          [](const auto &x, const auto &y) { return x.first > y.first || (x.first == y.first && x.second < y.second); });
                for (const auto &it : edge) {
                    if (cum >= target) break;
                    bh.kept.push_back(it.second);
                    cum += it.first;
                }
            }
            bh.m = mh;
            bh.exact = exact[size_t(h)];
            bh.tail_point = tail_point[size_t(h)];
            bh.tail_bound = tail_bound[size_t(h)];
            bh.est_mass = Z > 0 ? float(std::min(1.0, cum / Z)) : 1.f;
        }
    });
}

void score_clusters_group(const float *Qg, int g, const KeyClusters &kc, int D, const std::vector<int32_t> &clusters,
                    float *osc, ThreadPool &pool) {
    const tk::GroupScorer scorer(Qg, g, D);
    pool.parallel_for(int64_t(clusters.size()), 8, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; i++) {
            const int c = clusters[size_t(i)], o0 = kc.offsets[size_t(c)];  // its keys lie in a run
            scorer.score(kc.key_in_order(o0), kc.offsets[size_t(c) + 1] - o0, osc + size_t(o0) * g, g);
        }
    });
}

}  // namespace tactic
