// The seam between the forward pass and Tactic sparse decode attention.
//
// forward.cpp owns the KV cache and calls decode() for each global-attention layer of
// each decode step once Tactic is active; everything behind it (clustering, re-clustering
// schedule, selection, sparse attention, statistics, baselines) lives in native/src/tactic/.
#pragma once

#include <cstdint>
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
};

struct TacticHeadStat {
    int layer = 0, head = 0, n_tokens = 0, n_selected = 0, n_attended = 0;
    float est_mass = 0.f, true_mass = -1.f;
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
    // The cache was rewound to n_keep tokens: forget clusters covering later tokens.
    void truncate(int n_keep);

    // Statistics of the last decode step, one entry per (global layer, query head).
    const std::vector<TacticHeadStat> &last_stats() const;
    double clustering_seconds() const;   // total so far
    double selection_seconds() const;    // total so far
    void reset_timings();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace tactic
