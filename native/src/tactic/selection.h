// Per-query-head token selection for one decode step: Tactic (cluster order + fitted
// mass estimate), and the baselines it is measured against (exact top-p oracle,
// cluster-order optimum, Quest pages).
#pragma once

#include <cstdint>
#include <vector>

#include "kmeans.h"

namespace tactic {

struct SelectionConfig {
    float head_frac = 0.015f;  // share of the sorted list scored exactly (the outliers)
    int min_head = 32;         // ... at least this many tokens
    float seg1 = 0.10f;        // centres of the two fitting segments, as shares of the list
    float seg2 = 0.60f;
    float seg_frac = 0.01f;    // width of each segment, as a share of the list
    int min_seg = 16;          // ... at least this many tokens
    int min_fit = 512;         // fewer clustered tokens than this: score them all exactly
};

// What one query head's Tactic fit found; P-independent, so several targets can be
// evaluated on one fit.
struct TacticFit {
    // Sorted clusters: corder[j] is the j-th best cluster, cend[j] the position in the
    // sorted token list just after it.
    std::vector<int32_t> corder, cend;
    int M = 0;                  // clustered tokens (length of the sorted list)
    int H = 0;                  // leading positions scored exactly
    std::vector<double> head_w; // exp(score - m) of positions [0, H)
    double always_w = 0;        // sum of exp(score - m) over the always-kept tokens
    double head_sum = 0;        // sum of head_w
    double tail_est = 0;        // estimated sum over positions [H, M)
    float m = 0;                // reference score (max of what was scored exactly)
    double a = 0, b = 0;        // y = a / x + b, x the 1-based position
    bool exact = false;         // every clustered token scored exactly (no fit needed)
    bool degenerate = false;    // a <= 0 or unusable segments: flat tail (more tokens)

    // Estimated mass of positions [H, hi) (0-based, hi <= M), under the fit.
    double tail_mass(int hi) const;
};

struct TacticChoice {
    int n_clusters = 0;   // prefix of the sorted clusters taken
    int n_tokens = 0;     // tokens in that prefix
    float est_mass = 0;   // estimated share of the mass (prefix + always-kept)
};

// Scores the clusters with q (dot product with the centroids), sorts them, scores the
// head and two segments exactly and fits the tail. always_scores: exact scores of the
// tokens attended regardless (sinks, recent/new tokens).
// centroid_scores: q . centroid for every cluster if the caller computed them (for all query
// heads of a group at once, reading the centroids once), else nullptr.
void tactic_fit(const float *q, const uint16_t *K, int D, const KeyClusters &kc, const float *always_scores,
                int n_always, const SelectionConfig &cfg, TacticFit &fit, std::vector<float> &scratch,
                const float *centroid_scores = nullptr);
// out[h * n_clusters + c] = Q[h] . centroid c for h < g (centroids read once per 4 heads).
void score_centroids(const float *Q, int g, const KeyClusters &kc, float *out);
// The shortest cluster prefix whose estimated mass (with the always-kept tokens) reaches p.
TacticChoice tactic_choose(const TacticFit &fit, float p);

// Select-then-prune (our extension): take the cluster prefix Tactic would choose for the
// stricter target 1 - (1 - p) * relax, score those candidates exactly, estimate the total
// as exact(candidates + always-kept) + the fitted tail after them, and keep the candidates
// of highest exact score until that estimate's share p is reached. The cluster order is
// only used to find candidates, so the count approaches the oracle's, and the mass
// estimate is exact except for the tail beyond the candidates.
struct PrunedChoice {
    std::vector<int32_t> tokens;  // always-kept and candidates kept, any order
    int n_candidates = 0;         // candidates scored (always-kept included)
    float est_mass = 0;
};
// osc (optional): exact scores of the candidates already computed for the KV group,
// osc[o * g + h] for order index o (see candidate_clusters); else they are scored here.
void tactic_prune(const TacticFit &fit, const KeyClusters &kc, const float *q, const uint16_t *K, int D,
                  const std::vector<int32_t> &always, const float *always_scores, float p, float relax,
                  PrunedChoice &out, const float *osc = nullptr, int g = 1, int h = 0);
// The clusters select-then-prune scores exactly for target p: the prefix Tactic chooses for
// the stricter target, extended to the whole exact head. Appended to out.
void prune_candidate_clusters(const TacticFit &fit, float p, float relax, std::vector<int32_t> &out);

// The sorted-list tokens of positions [0, n) (the first clusters of the fit).
void append_prefix_tokens(const TacticFit &fit, const KeyClusters &kc, int n_clusters, std::vector<int32_t> &out);

// Minimal count of tokens whose true mass reaches p, for each p (sorted_w: all weights,
// descending; prefix sums used).
int count_for_mass(const std::vector<double> &cum, double total, float p);

// Quest page metadata of one (layer, KV head): per-page element-wise min and max of keys.
struct QuestPages {
    static constexpr int kPage = 16;
    int D = 0, n_built = 0;          // full pages built
    std::vector<float> mn, mx;       // [page][D]
    void update(const uint16_t *K, int D_, int n_tokens);  // builds the full pages of [0, n_tokens)
    void truncate(int n_keep) { n_built = std::min(n_built, n_keep / kPage); }
};

// Quest: pages of [0, n_tokens) ranked by the bound sum_d max(q_d min_d, q_d max_d);
// the best pages are taken until at least `budget` tokens are covered. Appends tokens.
void quest_select(const float *q, const uint16_t *K, const QuestPages &pages, int n_tokens, int budget,
                  std::vector<int32_t> &out, std::vector<float> &scratch);

}  // namespace tactic
