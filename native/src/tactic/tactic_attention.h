// The seam between the forward pass and Tactic sparse decode attention.
//
// forward.cpp owns the KV cache and calls decode() for each global-attention layer of
// each decode step once Tactic is active; everything behind it (clustering, re-clustering
// schedule, selection, sparse attention, statistics, baselines) lives in native/src/tactic/.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "../arch.h"
#include "../threadpool.h"

namespace tactic {

struct TacticParams {
    float p = 0.9f;               // target share of the attention mass
    int cluster_size = 16;        // average K-means cluster size
    int recluster_interval = 0;   // decode steps between re-clusterings (0: implementation default)
    int n_sink = 0;               // leading tokens always attended
    int n_recent = 0;             // trailing tokens always attended
    bool debug = false;           // also compute full attention to report the true mass
    uint64_t seed = 0;
    // Added by the Tactic work (additive):
    int selector = 0;             // TACTIC_SELECT_*: Tactic, or a baseline for comparisons
    float prune_relax = 0.5f;     // TACTIC_PRUNE: candidates for target 1 - (1 - p) * relax
    bool incremental = false;     // assign tokens leaving the recent window to the nearest centroid
    std::vector<float> eval_ps = {0.5f, 0.7f, 0.8f, 0.9f, 0.95f};  // targets evaluated in debug mode
    // Block clustering (default): tokens leaving the recent window are clustered in blocks
    // of this many tokens as they accumulate (the first clustering: blocks of
    // max(4 * block_size, 1024)). 0: the older whole-cache modes (recluster_interval, incremental).
    int block_size = 256;
    float force_fraction = 0.f;   // > 0: the bounded selector keeps ceil(f * n_tokens) tokens per head
    float tail_share = 0.25f;     // bounded selector: tail bound target, share of (1 - p)
    float tail_z = 3.0f;          // bounded selector: confidence multiplier of the tail bound
    float target_margin = 0.1f;   // bounded selector: keep p + margin (1 - p) of the estimated total
    bool tail_values = true;      // bounded selector, block mode: estimate the unattended tokens' share
                                  // of the output from cluster value means (tail_estimate.h)
};

// Selectors: which tokens decode attends. TACTIC and CLUSTER_OPT always keep the sinks and
// the tokens not yet clustered; ORACLE (exact top-p) and QUEST (pages of 16; per query head
// as many tokens as Tactic chose) select among all tokens.
// TACTIC_PRUNE: Tactic's clusters propose candidates, exact scores choose among them
// (see tactic_prune in selection.h).
// BOUNDED (the default): cluster candidates scored exactly once per KV group, an upper
// bound on the unscored tail, token-level pruning (bounded_selection.h).
enum Selector { kSelectTactic = 0, kSelectOracle = 1, kSelectQuest = 2, kSelectClusterOpt = 3, kSelectFull = 4,
                kSelectTacticPrune = 5, kSelectBounded = 6 };

// Debug mode: one entry per (global layer, query head, target p in eval_ps).
struct TacticHeadEval {
    int layer = 0, head = 0, n_tokens = 0;
    float p = 0;
    int tactic_tokens = 0;      // Tactic's own selection at p (always-kept included)
    float tactic_est_mass = 0, tactic_true_mass = 0;
    int oracle_tokens = 0;      // the fewest tokens whose true mass reaches p
    int cluster_opt_tokens = 0; // always-kept + the shortest cluster-order prefix reaching p (token granularity)
    float quest_true_mass = 0;  // Quest (pages of 16) with tactic_tokens tokens
    int union_tokens = 0;       // Tactic's union over the head's KV group at p
    float union_true_mass = 0;  // this head's true mass over that union
    int degenerate = 0;         // the fit fell back to a flat tail
    int prune_tokens = 0;       // select-then-prune at p: tokens kept
    int prune_candidates = 0;   // ... candidates scored exactly
    float prune_est_mass = 0, prune_true_mass = 0;
};

struct TacticHeadStat {
    int layer = 0, head = 0, n_tokens = 0, n_selected = 0, n_attended = 0;
    float est_mass = 0.f, true_mass = -1.f;
    int n_scored = 0;             // tokens scored exactly for the KV group (bounded selector)
    // Debug mode only (else -1): the oracle's count at p, the union of the group's oracle
    // sets, and the selector's estimated total mass over the true one (bounded selector).
    int oracle_tokens = -1, oracle_union = -1;
    float est_over_true_total = -1.f;
};

class TacticAttention {
public:
    // n_ctx: capacity (token stride) of the KV cache.
    TacticAttention(const TacticParams &params, const HParams &hp, int n_ctx);
    ~TacticAttention();

    // One decode token of global layer `il`.
    //  q:   [n_head][head_dim] f32, after QK-norm and RoPE, already multiplied by the
    //       attention scale (scores are plain q.k).
    //  K,V: the layer's cache, f16, laid out [n_head_kv][n_ctx][head_dim];
    //       tokens [0, n_tokens) are valid, the current token included.
    //  out: [n_head][head_dim] f32.
    void decode(int il, const float *q, const uint16_t *K, const uint16_t *V, int n_tokens, float *out,
                ThreadPool &pool);
    // Builds now the clusters that the decode step over n_tokens tokens of layer `il`
    // would build first (so that a saved session carries them). Needs n_recent >= 1 (the
    // token n_tokens - 1 is not written yet and must not be clustered); else a no-op.
    void prepare(int il, const uint16_t *K, int n_tokens, ThreadPool &pool);
    // The cache was rewound to n_keep tokens: forget clusters covering later tokens.
    void truncate(int n_keep);

    // Saved sessions: the clusters as bytes, so that a restored context does not cluster
    // its keys again. parse_state checks them (TACTIC_ERR_FORMAT when damaged) without
    // changing anything and returns null when they were made with other clustering
    // parameters (the clusters are then rebuilt lazily); adopt_state installs them, with
    // `keys(il, kh)` giving that layer and KV head's cache rows ([n_ctx][head_dim] f16).
    struct SavedClusters;
    std::vector<uint8_t> state_bytes() const;
    std::shared_ptr<SavedClusters> parse_state(const uint8_t *p, size_t n, int n_past) const;
    void adopt_state(const SavedClusters &saved, const std::function<const uint16_t *(int, int)> &keys);

    // Statistics of the last decode step, one entry per (global layer, query head).
    const std::vector<TacticHeadStat> &last_stats() const;
    // Debug mode: Tactic and the baselines at each eval_ps target, last decode step.
    const std::vector<TacticHeadEval> &last_eval() const;
    // Switches the selector and target for the following steps (clusters are kept).
    void set_selection(int selector, float p);
    void set_debug(bool on);
    // Perturbation control (evaluations): every query row of the following steps gets
    // Gaussian noise of sigma times its RMS per element (seeded by seed, layer and length).
    void set_debug_noise(float sigma, uint64_t seed);
    // Bounded selector options for the following steps (evaluations): the target margin and
    // the estimate of the unattended tokens' output share.
    void set_bounded_options(float margin, bool tail_values);
    const TacticParams &params() const;
    double clustering_seconds() const;   // total so far
    double selection_seconds() const;    // total so far
    void reset_timings();
    // Mean over decode calls and global-layer query heads of (tokens attended / tokens
    // cached) since the last reset_timings(); -1 if no Tactic decode ran.
    double attended_share() const;

    // Test hooks: the clustered range end of (layer, KV head) (-1: no clusters), and the
    // tokens attended by that KV group on its last decode step (ascending).
    int clustered_end(int il, int kh) const;
    const std::vector<int32_t> &last_attended(int il, int kh) const;

    // Debug mode, per (global layer, query head) of the last decode step: every cached
    // token's true softmax weight, its flags (kTokKept | kTokAttended | kTokScored) and the
    // rank of its cluster in the head's centroid order (-1: not in a cluster, or no rank).
    // Empty when the step ran without debug mode.
    static constexpr uint8_t kTokKept = 1, kTokAttended = 2, kTokScored = 4;
    struct TokenDetail {
        std::vector<float> w;
        std::vector<uint8_t> flags;
        std::vector<int32_t> crank;
    };
    const TokenDetail &last_token_detail(int il, int head) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace tactic
