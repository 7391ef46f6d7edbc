#include "selection.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "../common.h"
#include "kernels.h"

namespace tactic {

namespace {

// H(n) = sum_{k=1..n} 1/k (exact below 64, asymptotic series above: error < 1e-9).
double harmonic(int64_t n) {
    if (n <= 0) return 0;
    if (n < 64) {
        double s = 0;
        for (int64_t k = 1; k <= n; k++) s += 1.0 / double(k);
        return s;
    }
    const double x = double(n);
    return std::log(x) + 0.57721566490153286 + 1.0 / (2 * x) - 1.0 / (12 * x * x);
}

float score_row(const float *q, const uint16_t *row, int D) {
    float s;
    tk::dots_group_f16(q, 1, row, D, &s);
    return s;
}

// Index into kc.order (and kc.keys_sorted) of sorted position p (0-based).
int order_index_at(const TacticFit &fit, const KeyClusters &kc, int p) {
    const size_t j = size_t(std::upper_bound(fit.cend.begin(), fit.cend.end(), p) - fit.cend.begin());
    const int start = j ? fit.cend[j - 1] : 0;
    return kc.offsets[size_t(fit.corder[j])] + (p - start);
}

}  // namespace

double TacticFit::tail_mass(int hi) const {
    if (hi <= H) return 0;
    if (exact) {  // the head covers everything
        return 0;
    }
    const int64_t lo = int64_t(H) + 1, up = hi;  // 1-based positions [lo, up]
    if (degenerate) return std::max(0.0, b) * double(up - lo + 1);
    int64_t up_eff = up;
    if (b < 0) {  // a/x + b > 0 only while x < -a/b
        const double x0 = -a / b;
        up_eff = std::min<int64_t>(up, int64_t(std::ceil(x0)) - 1);
        if (up_eff < lo) return 0;
    }
    return std::max(0.0, a * (harmonic(up_eff) - harmonic(lo - 1)) + b * double(up_eff - lo + 1));
}

void score_centroids(const float *Q, int g, const KeyClusters &kc, float *out) {
    const int C = kc.n_clusters, D = kc.D;
    int h = 0;
    for (; h + 4 <= g; h += 4) tk::dots4_f32(Q + size_t(h) * D, kc.centroids.data(), C, D, out + size_t(h) * C);
    for (; h < g; h++) tk::dots1_f32(Q + size_t(h) * D, kc.centroids.data(), C, D, out + size_t(h) * C);
}

void tactic_fit(const float *q, const uint16_t *K, int D, const KeyClusters &kc, const float *always_scores,
                int n_always, const SelectionConfig &cfg, TacticFit &fit, std::vector<float> &scratch,
                const float *centroid_scores) {
    const int C = kc.n_clusters;
    fit.M = kc.size();
    fit.exact = fit.degenerate = false;
    fit.a = fit.b = 0;
    fit.tail_est = 0;

    // 1. Order the clusters by q . centroid.
    scratch.resize(size_t(C));
    if (centroid_scores) std::copy_n(centroid_scores, C, scratch.data());
    else tk::dots1_f32(q, kc.centroids.data(), C, D, scratch.data());
    fit.corder.resize(size_t(C));
    std::iota(fit.corder.begin(), fit.corder.end(), 0);
    std::sort(fit.corder.begin(), fit.corder.end(), [&](int32_t x, int32_t y) {
        return scratch[size_t(x)] > scratch[size_t(y)] || (scratch[size_t(x)] == scratch[size_t(y)] && x < y);
    });
    fit.cend.resize(size_t(C));
    int pos = 0;
    for (int j = 0; j < C; j++) {
        const int c = fit.corder[size_t(j)];
        pos += kc.offsets[size_t(c) + 1] - kc.offsets[size_t(c)];
        fit.cend[size_t(j)] = pos;
    }

    // 2. The head (rounded up to whole clusters) is scored exactly; small lists entirely.
    const int M = fit.M;
    int H = M;
    if (M >= cfg.min_fit) {
        const int want = std::max(cfg.min_head, int(std::ceil(double(cfg.head_frac) * M)));
        const size_t j = size_t(std::lower_bound(fit.cend.begin(), fit.cend.end(), std::min(want, M)) - fit.cend.begin());
        H = fit.cend[std::min(j, size_t(C) - 1)];
    }
    fit.H = H;
    fit.exact = H >= M;
    std::vector<float> head_s(static_cast<size_t>(H));
    {
        int p = 0;
        for (int j = 0; p < H; j++) {
            const int c = fit.corder[size_t(j)];
            for (int o = kc.offsets[size_t(c)]; o < kc.offsets[size_t(c) + 1]; o++, p++)
                head_s[size_t(p)] = score_row(q, kc.key_in_order(o), D);
        }
    }
    float m = -INFINITY;
    for (float s : head_s) m = std::max(m, s);
    for (int i = 0; i < n_always; i++) m = std::max(m, always_scores[i]);
    if (!std::isfinite(m)) m = 0;
    fit.m = m;
    fit.head_w.resize(size_t(H));
    fit.head_sum = 0;
    for (int i = 0; i < H; i++) fit.head_sum += fit.head_w[size_t(i)] = std::exp(double(head_s[size_t(i)]) - m);
    fit.always_w = 0;
    for (int i = 0; i < n_always; i++) fit.always_w += std::exp(double(always_scores[i]) - m);
    if (fit.exact) return;

    // 3. Two segments (near seg1 and seg2 of the list), scored exactly: their mean
    // weights at their mean positions fix y = a/x + b.
    const int width = std::max(cfg.min_seg, int(std::ceil(double(cfg.seg_frac) * M)));
    auto segment = [&](float centre, double &x_mean, double &y_mean) {
        int lo = std::max(H, int(double(centre) * M) - width / 2);
        int hi = std::min(M, lo + width);
        if (hi - lo < 2) return false;
        double xs = 0, ys = 0;
        for (int p = lo; p < hi; p++) {
            xs += double(p + 1);
            ys += std::exp(double(score_row(q, kc.key_in_order(order_index_at(fit, kc, p)), D)) - m);
        }
        x_mean = xs / (hi - lo);
        y_mean = ys / (hi - lo);
        return true;
    };
    double x1 = 0, y1 = 0, x2 = 0, y2 = 0;
    const bool ok1 = segment(cfg.seg1, x1, y1), ok2 = segment(cfg.seg2, x2, y2);
    const bool usable = ok1 && ok2 && x2 > x1;
    if (usable) {
        fit.a = (y1 - y2) / (1.0 / x1 - 1.0 / x2);
        fit.b = y1 - fit.a / x1;
    }
    if (!usable || !(fit.a > 0) || !std::isfinite(fit.a) || !std::isfinite(fit.b)) {
        // Degenerate (flat or rising curve): a flat tail at the larger segment mean. For
        // a tail that does not decay this is the honest estimate; it overestimates a
        // decaying one, so the fallback selects more tokens, never fewer.
        fit.degenerate = true;
        fit.a = 0;
        fit.b = usable ? std::max(y1, y2) : (H ? fit.head_sum / H : 1.0);
    }
    fit.tail_est = fit.tail_mass(M);
}

TacticChoice tactic_choose(const TacticFit &fit, float p) {
    TacticChoice ch;
    const int C = int(fit.corder.size());
    if (C == 0) {
        ch.est_mass = 1.f;
        return ch;
    }
    const double Z = fit.always_w + fit.head_sum + fit.tail_est;
    int n = fit.M;
    if (p < 1.f && Z > 0) {
        const double target = double(p) * Z;
        double cum = fit.always_w;
        n = -1;
        if (cum >= target) n = 0;
        for (int i = 0; n < 0 && i < fit.H; i++) {
            cum += fit.head_w[size_t(i)];
            if (cum >= target) n = i + 1;
        }
        if (n < 0) {  // smallest hi in (H, M] with cum + tail_mass(hi) >= target
            int lo = fit.H + 1, hi = fit.M;
            if (cum + fit.tail_mass(hi) < target) {
                n = fit.M;
            } else {
                while (lo < hi) {
                    const int mid = lo + (hi - lo) / 2;
                    if (cum + fit.tail_mass(mid) >= target) hi = mid; else lo = mid + 1;
                }
                n = lo;
            }
        }
    }
    // Whole clusters: the order inside a cluster carries no information.
    const size_t j = size_t(std::lower_bound(fit.cend.begin(), fit.cend.end(), std::max(n, 1)) - fit.cend.begin());
    ch.n_clusters = int(std::min(j, size_t(C) - 1)) + 1;
    ch.n_tokens = fit.cend[size_t(ch.n_clusters) - 1];
    double mass = fit.always_w;
    const int nh = std::min(ch.n_tokens, fit.H);
    for (int i = 0; i < nh; i++) mass += fit.head_w[size_t(i)];
    mass += fit.tail_mass(ch.n_tokens);
    ch.est_mass = Z > 0 ? float(std::min(1.0, mass / Z)) : 1.f;
    return ch;
}

void append_prefix_tokens(const TacticFit &fit, const KeyClusters &kc, int n_clusters, std::vector<int32_t> &out) {
    for (int j = 0; j < n_clusters; j++) {
        const int c = fit.corder[size_t(j)];
        out.insert(out.end(), kc.order.begin() + kc.offsets[size_t(c)], kc.order.begin() + kc.offsets[size_t(c) + 1]);
    }
}

namespace {
float prune_target(float p, float relax) { return p >= 1.f ? 1.f : 1.f - (1.f - p) * relax; }
// Clusters of the candidate prefix: Tactic's choice for the stricter target, extended to
// cover the exactly scored head (those tokens' scores are known, and leaving them out of
// both the candidates and the tail would bias the total low).
int prune_prefix_clusters(const TacticFit &fit, float p, float relax) {
    const TacticChoice c = tactic_choose(fit, prune_target(p, relax));
    int j = c.n_clusters;
    while (j < int(fit.cend.size()) && (j == 0 || fit.cend[size_t(j) - 1] < fit.H)) j++;
    return j;
}
}  // namespace

void prune_candidate_clusters(const TacticFit &fit, float p, float relax, std::vector<int32_t> &out) {
    const int n = prune_prefix_clusters(fit, p, relax);
    out.insert(out.end(), fit.corder.begin(), fit.corder.begin() + n);
}

void tactic_prune(const TacticFit &fit, const KeyClusters &kc, const float *q, const uint16_t *K, int D,
                  const std::vector<int32_t> &always, const float *always_scores, float p, float relax,
                  PrunedChoice &out, const float *osc, int g, int h) {
    (void)K;
    out.tokens.clear();
    const int n_cl = prune_prefix_clusters(fit, p, relax);
    std::vector<std::pair<double, int32_t>> items;
    items.reserve(always.size() + size_t(n_cl ? fit.cend[size_t(n_cl) - 1] : 0));
    for (size_t i = 0; i < always.size(); i++) items.emplace_back(std::exp(double(always_scores[i]) - fit.m), always[i]);
    int pos = 0;
    for (int j = 0; j < n_cl; j++) {
        const int cl = fit.corder[size_t(j)];
        for (int o = kc.offsets[size_t(cl)]; o < kc.offsets[size_t(cl) + 1]; o++, pos++) {
            const int32_t t = kc.order[size_t(o)];
            double w;
            if (pos < fit.H) w = fit.head_w[size_t(pos)];
            else if (osc) w = std::exp(double(osc[size_t(o) * g + h]) - fit.m);
            else w = std::exp(double(score_row(q, kc.key_in_order(o), D)) - fit.m);
            items.emplace_back(w, t);
        }
    }
    double exact = 0;
    for (const auto &it : items) exact += it.first;
    const double rest = std::max(0.0, fit.tail_est - fit.tail_mass(pos));
    const double Z = exact + rest;
    out.n_candidates = int(items.size());
    std::sort(items.begin(), items.end(), [](const auto &x, const auto &y) { return x.first > y.first || (x.first == y.first && x.second < y.second); });
    const double target = double(p) * Z;
    double cum = 0;
    for (const auto &it : items) {
        out.tokens.push_back(it.second);
        cum += it.first;
        if (p < 1.f && cum >= target) break;
    }
    out.est_mass = Z > 0 ? float(std::min(1.0, cum / Z)) : 1.f;
}

int count_for_mass(const std::vector<double> &cum, double total, float p) {
    if (cum.empty()) return 0;
    if (p >= 1.f) {  // every token with non-zero weight... by definition all of them
        return int(cum.size());
    }
    const double target = double(p) * total;
    const size_t i = size_t(std::lower_bound(cum.begin(), cum.end(), target) - cum.begin());
    return int(std::min(i + 1, cum.size()));
}

void QuestPages::update(const uint16_t *K, int D_, int n_tokens) {
    D = D_;
    const int n_full = n_tokens / kPage;
    if (n_full <= n_built) return;
    mn.resize(size_t(n_full) * D);
    mx.resize(size_t(n_full) * D);
    std::vector<float> row(static_cast<size_t>(D));
    for (int pg = n_built; pg < n_full; pg++) {
        float *lo = mn.data() + size_t(pg) * D, *hi = mx.data() + size_t(pg) * D;
        std::fill(lo, lo + D, INFINITY);
        std::fill(hi, hi + D, -INFINITY);
        for (int t = pg * kPage; t < (pg + 1) * kPage; t++) {
            tk::f16_to_f32_row(K + size_t(t) * D, row.data(), D);
            for (int d = 0; d < D; d++) {
                lo[d] = std::min(lo[d], row[size_t(d)]);
                hi[d] = std::max(hi[d], row[size_t(d)]);
            }
        }
    }
    n_built = n_full;
}

void quest_select(const float *q, const uint16_t *K, const QuestPages &pages, int n_tokens, int budget,
                  std::vector<int32_t> &out, std::vector<float> &scratch) {
    const int D = pages.D, P = QuestPages::kPage;
    const int n_pages = (n_tokens + P - 1) / P;
    TACTIC_CHECK(pages.n_built >= n_tokens / P, TACTIC_ERR_INTERNAL, "quest_select: page metadata out of date");
    scratch.resize(size_t(n_pages));
    for (int pg = 0; pg < n_pages; pg++) {
        float bound = 0;  // f32 so the loop vectorises
        if (pg < pages.n_built) {
            const float *lo = pages.mn.data() + size_t(pg) * D, *hi = pages.mx.data() + size_t(pg) * D;
            for (int d = 0; d < D; d++) bound += std::max(q[d] * lo[d], q[d] * hi[d]);
        } else {  // the partial last page: its bound is the max score of its tokens' box
            std::vector<float> lo(static_cast<size_t>(D), INFINITY), hi(size_t(D), -INFINITY);
            for (int t = pg * P; t < n_tokens; t++)
                for (int d = 0; d < D; d++) {
                    const float x = f16_to_f32(K[size_t(t) * D + d]);
                    lo[size_t(d)] = std::min(lo[size_t(d)], x);
                    hi[size_t(d)] = std::max(hi[size_t(d)], x);
                }
            for (int d = 0; d < D; d++) bound += std::max(q[d] * lo[size_t(d)], q[d] * hi[size_t(d)]);
        }
        scratch[size_t(pg)] = bound;
    }
    std::vector<int32_t> ord(static_cast<size_t>(n_pages));
    std::iota(ord.begin(), ord.end(), 0);
    std::sort(ord.begin(), ord.end(), [&](int32_t x, int32_t y) {
        return scratch[size_t(x)] > scratch[size_t(y)] || (scratch[size_t(x)] == scratch[size_t(y)] && x < y);
    });
    int taken = 0;
    for (int i = 0; i < n_pages && taken < budget; i++) {
        const int pg = ord[size_t(i)];
        for (int t = pg * P; t < std::min(n_tokens, (pg + 1) * P); t++, taken++) out.push_back(t);
    }
}

}  // namespace tactic
