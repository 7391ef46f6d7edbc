// Tactic's default selector (TACTIC_SELECT_BOUNDED): cluster-level candidates, token-level
// pruning by exact scores, and an UPPER bound on the mass of the tokens left unscored, so
// that the kept set reaches the target share P whenever the bound holds.
//
// Per KV group and decode step (docs/TACTIC.md, "The bounded selector"):
//  1. every query head orders the clusters by q . centroid;
//  2. candidates: the union over the group's heads of a cluster prefix per head; their keys
//     are scored exactly for all heads of the group at once (each key read once a group);
//  3. per head, the tail (clusters nobody proposed) is estimated from stratified random
//     samples (strata: consecutive tail clusters in the head's order, finer near the top),
//     and bounded above by 2 x its estimate + z * standard error;
//  4. a head whose tail bound is above eps of its estimated total asks for more clusters
//     (its prefix doubles) and 2-3 repeat, a few rounds at most;
//  5. per head, tokens are kept by decreasing exact score until (P + margin (1 - P)) times
//     (exact + tail bound).
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "../threadpool.h"
#include "kmeans.h"

namespace tactic {

struct BoundedConfig {
    float p = 0.9f;
    float tail_share = 0.25f;    // stop growing candidates once tail bound <= tail_share * (1 - p) of the total
    float z = 3.0f;              // one-sided confidence multiplier of the tail bound
    double tail_point_factor = 2.0;  // the bound is factor * point estimate + z * standard error
    int n_strata = 6;            // strata over the tail, widths 1/32, 1/32, 1/16, 1/8, 1/4, 1/2 of it
    int samples_per_stratum = 24;
    int max_rounds = 4;          // candidate growth rounds
    float init_proxy_share = 0.0f;  // 0: start at p_c = 1 - (1 - p) / 4 of the centroid proxy mass
    int min_init_tokens = 64;    // the first prefix of each head covers at least this many tokens
    float force_fraction = 0.f;  // > 0: keep exactly ceil(f * n_tokens) tokens per head (benchmarks)
    // Safety margin: keep up to p + margin * (1 - p) of the estimated total (not p), so a
    // total underestimated by up to a factor p / (p + margin (1 - p)) still reaches p.
    float margin = 0.1f;
};

// The share of the estimated total the kept set aims at: p + margin * (1 - p), at most 1.
inline double bounded_target_share(const BoundedConfig &cfg) {
    return std::min(1.0, double(cfg.p) + double(cfg.margin) * (1.0 - double(cfg.p)));
}

// Per head of the group (h < g), what the step chose.
struct BoundedHead {
    std::vector<int32_t> kept;   // tokens kept (the heaviest, in no particular order)
    float m = 0;                 // reference score of the weights below (max exactly scored)
    double exact = 0;            // sum of exp(s - m) over every exactly scored token (always + candidates)
    double tail_point = 0;       // the tail's stratified estimate
    double tail_bound = 0;       // its upper bound (used)
    float est_mass = 0;          // kept mass / (exact + tail_bound)
};

struct BoundedGroup {
    std::vector<BoundedHead> heads;
    int n_scored = 0;            // tokens scored exactly for the group (always + candidates)
    int rounds = 0;
};

// Scratch kept across steps (no per-step allocation of the big arrays).
struct BoundedScratch {
    std::vector<float> osc;              // [order index][g]: exact scores of scored clusters
    std::vector<uint8_t> scored;         // per cluster
    std::vector<std::vector<int32_t>> corder;  // per head: clusters sorted by centroid score
    std::vector<int> prefix;             // per head: clusters of its prefix
    std::vector<int32_t> new_clusters;
    std::vector<std::pair<double, int32_t>> items;
    std::mt19937_64 rng{12345};
};

// Qg: [g][D] queries; K: the KV head's cache rows; kc: its clusters; cscores: [g][n_clusters]
// q . centroid; always: tokens outside the clusters (sinks, recent, not yet clustered), with
// their exact scores always_scores [g][n_always]. n_tokens: tokens in the cache.
void select_bounded(const float *Qg, int g, const uint16_t *K, int D, const KeyClusters &kc, const float *cscores,
                    const std::vector<int32_t> &always, const float *always_scores, int n_tokens,
                    const BoundedConfig &cfg, ThreadPool &pool, BoundedScratch &scr, BoundedGroup &out);

// Scores every token of `clusters` for all g heads (each key read once for the group):
// osc[o * g + h], o the order index of the token in kc.
void score_clusters_group(const float *Qg, int g, const KeyClusters &kc, int D, const std::vector<int32_t> &clusters,
                          float *osc, ThreadPool &pool);

}  // namespace tactic
