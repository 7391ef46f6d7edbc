// TacticAttention: per global layer and KV head, keeps the K-means clusters of the cached
// keys (built lazily on the first decode step, rebuilt on a schedule, optionally extended
// incrementally), selects tokens per query head, takes the union over the KV group and
// runs exact softmax attention over it. Baselines share the same path for comparisons.
#include "tactic_attention.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "../common.h"
#include "bounded_selection.h"
#include "cluster_state.h"
#include "kmeans.h"
#include "selection.h"
#include "sparse_attention.h"
#include "tail_estimate.h"

namespace tactic {

namespace {

constexpr int kDefaultRecluster = 2048;  // the paper's example interval
constexpr int kMaxIter = 10;
constexpr int kMinInitBlock = 1024;      // first clustering: blocks of at least this many tokens

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

struct TacticAttention::Impl {
    TacticParams prm;
    HParams hp;
    int n_ctx = 0;
    SelectionConfig cfg;

    struct Layer {
        std::vector<KeyClusters> kv;   // per KV head
        std::vector<QuestPages> pages; // per KV head
        std::vector<TacticHeadStat> stats;
        std::vector<TacticHeadEval> eval;
        std::vector<std::vector<int32_t>> attended;  // per KV head: last step's list (test hook)
        std::vector<std::vector<float>> vmean;       // per KV head: cluster value means (block mode)
        std::vector<TokenDetail> detail;             // per query head, debug mode: last step's tokens
    };
    std::vector<Layer> layers;
    mutable std::vector<TacticHeadStat> flat_stats;
    mutable std::vector<TacticHeadEval> flat_eval;
    int last_step_tokens = -1;
    double t_cluster = 0, t_select = 0;
    double share_sum = 0;
    int64_t share_n = 0;
    BoundedScratch bscr;
    float noise_sigma = 0.f;                 // set_debug_noise
    uint64_t noise_seed = 0;
    std::vector<float> qnoise;
    BoundedGroup bgroup;
    std::vector<float> osc;
    std::vector<int32_t> cand_clusters;

    // Per-step scratch.
    std::vector<TacticFit> fits;
    std::vector<TacticChoice> choices;
    std::vector<PrunedChoice> pruned;
    std::vector<std::vector<float>> head_scratch;
    std::vector<std::vector<int32_t>> own;  // per query head of the group: its selection
    std::vector<float> always_scores, full_scores, cscores;
    std::vector<int32_t> always_list, list;
    std::vector<uint8_t> mark;
    AttnScratch attn;
    SoftmaxPartial tail;

    int interval() const { return prm.recluster_interval > 0 ? prm.recluster_interval : kDefaultRecluster; }
    // Fewest clusterable tokens for which clustering pays off; below, attend everything.
    int min_cluster_tokens() const { return std::max(cfg.min_fit, 4 * prm.cluster_size); }

    void maintain_clusters(int il, int kh, const uint16_t *Kh, int n_tokens, ThreadPool &pool);
    void decode_group(int il, int kh, const float *Qg, const uint16_t *Kh, const uint16_t *Vh, int n_tokens,
                      float *out, ThreadPool &pool);
    void debug_eval(int il, int kh, const float *Qg, const uint16_t *Kh, int n_tokens, const KeyClusters &kc,
                    ThreadPool &pool);
    void record_token_detail(int il, int kh, int n_tokens, bool all, bool bounded, const KeyClusters &kc);
};

TacticAttention::TacticAttention(const TacticParams &params, const HParams &hp, int n_ctx) : impl_(new Impl) {
    TACTIC_CHECK(params.p > 0.f && params.p <= 1.f, TACTIC_ERR_INVALID_ARGUMENT, "tactic_p must be in (0, 1]");
    TACTIC_CHECK(params.cluster_size >= 1 && params.cluster_size <= 4096, TACTIC_ERR_INVALID_ARGUMENT,
                 "cluster_size must be in [1, 4096]");
    TACTIC_CHECK(params.recluster_interval >= 0 && params.n_sink >= 0 && params.n_recent >= 0,
                 TACTIC_ERR_INVALID_ARGUMENT, "recluster_interval, n_sink and n_recent must be >= 0");
    TACTIC_CHECK(params.selector >= kSelectTactic && params.selector <= kSelectBounded, TACTIC_ERR_INVALID_ARGUMENT,
                 "unknown Tactic selector");
    TACTIC_CHECK(hp.n_head_kv > 0 && hp.n_head % hp.n_head_kv == 0 && hp.head_dim > 0, TACTIC_ERR_INVALID_ARGUMENT,
                 "Tactic: n_head must be a multiple of n_head_kv");
    impl_->prm = params;
    impl_->hp = hp;
    impl_->n_ctx = n_ctx;
    impl_->layers.resize(size_t(hp.n_layer));
}

TacticAttention::~TacticAttention() = default;

void TacticAttention::Impl::maintain_clusters(int il, int kh, const uint16_t *Kh, int n_tokens, ThreadPool &pool) {
    KeyClusters &kc = layers[size_t(il)].kv[size_t(kh)];
    const int begin = std::min(prm.n_sink, n_tokens);
    const int end = std::max(begin, n_tokens - prm.n_recent);
    if (prm.block_size > 0) {
        // Block mode: the first clustering cuts [begin, end) into blocks; later tokens are
        // clustered a block at a time once block_size of them have left the recent window.
        const double t0 = now_s();
        const uint64_t seed = prm.seed * 0x9E3779B97F4A7C15ull + uint64_t(il) * 1000003u + uint64_t(kh) + 1;
        if (kc.empty()) {
            if (end - begin < min_cluster_tokens()) return;  // too short: attend everything
            kc = empty_blocks(hp.head_dim, begin);
            const int bi = std::max(kMinInitBlock, 4 * prm.block_size);
            const int nb = std::max(1, (end - begin) / bi);
            for (int b = 0; b < nb; b++)
                kc.append_block(Kh, b + 1 == nb ? end : begin + (b + 1) * bi, prm.cluster_size, kMaxIter,
                                seed + uint64_t(b) * 7919u, pool);
        } else {
            while (end - kc.end >= prm.block_size)
                kc.append_block(Kh, kc.end + prm.block_size, prm.cluster_size, kMaxIter,
                                seed + uint64_t(kc.block_tok_end.size()) * 7919u, pool);
        }
        t_cluster += now_s() - t0;
        return;
    }
    if (end - begin < min_cluster_tokens()) {  // too short: attend everything
        if (!kc.empty()) kc.gather_keys(Kh);
        return;
    }
    if (kc.empty() || end - kc.base_end >= interval()) {
        const double t0 = now_s();
        const uint64_t seed = prm.seed * 0x9E3779B97F4A7C15ull + uint64_t(il) * 1000003u + uint64_t(kh) + 1;
        kc = cluster_keys(Kh, hp.head_dim, begin, end, prm.cluster_size, kMaxIter, seed, pool);
        t_cluster += now_s() - t0;
    } else if (prm.incremental && end > kc.end) {
        const double t0 = now_s();
        kc.assign_new(Kh, end);
        t_cluster += now_s() - t0;
    }
    kc.gather_keys(Kh);  // after a truncation
}

void TacticAttention::decode(int il, const float *q, const uint16_t *K, const uint16_t *V, int n_tokens, float *out,
                             ThreadPool &pool) {
    Impl &I = *impl_;
    TACTIC_CHECK(il >= 0 && il < I.hp.n_layer, TACTIC_ERR_INVALID_ARGUMENT, "Tactic: layer out of range");
    TACTIC_CHECK(n_tokens > 0 && n_tokens <= I.n_ctx, TACTIC_ERR_INVALID_ARGUMENT, "Tactic: n_tokens out of range");
    if (n_tokens != I.last_step_tokens) {  // a new decode step: older statistics go
        for (auto &L : I.layers) {
            L.stats.clear();
            L.eval.clear();
            L.detail.clear();
        }
        I.last_step_tokens = n_tokens;
    }
    Impl::Layer &L = I.layers[size_t(il)];
    if (L.kv.empty()) {
        L.kv.resize(size_t(I.hp.n_head_kv));
        L.pages.resize(size_t(I.hp.n_head_kv));
    }
    L.stats.clear();
    L.eval.clear();
    const int D = I.hp.head_dim, g = I.hp.n_head / I.hp.n_head_kv;
    if (I.noise_sigma > 0.f) {  // perturbation control (evaluations): q + sigma rms(q_h) N(0, 1)
        I.qnoise.assign(q, q + size_t(I.hp.n_head) * D);
        std::mt19937_64 rng(I.noise_seed * 0x9E3779B97F4A7C15ull + uint64_t(il) * 1000003u + uint64_t(n_tokens));
        std::normal_distribution<float> nd(0.f, 1.f);
        for (int h = 0; h < I.hp.n_head; h++) {
            float *qh = I.qnoise.data() + size_t(h) * D;
            double ss = 0;
            for (int d = 0; d < D; d++) ss += double(qh[d]) * qh[d];
            const float a = I.noise_sigma * float(std::sqrt(ss / D));
            for (int d = 0; d < D; d++) qh[d] += a * nd(rng);
        }
        q = I.qnoise.data();
    }
    for (int kh = 0; kh < I.hp.n_head_kv; kh++) {
        const size_t off = size_t(kh) * I.n_ctx * D;
        I.decode_group(il, kh, q + size_t(kh) * g * D, K + off, V + off, n_tokens, out + size_t(kh) * g * D, pool);
    }
}

void TacticAttention::prepare(int il, const uint16_t *K, int n_tokens, ThreadPool &pool) {
    Impl &I = *impl_;
    TACTIC_CHECK(il >= 0 && il < I.hp.n_layer, TACTIC_ERR_INVALID_ARGUMENT, "Tactic: layer out of range");
    if (I.prm.n_recent < 1 || n_tokens <= 0 || n_tokens > I.n_ctx) return;
    if (I.prm.selector == kSelectFull || I.prm.selector == kSelectOracle) return;
    Impl::Layer &L = I.layers[size_t(il)];
    if (L.kv.empty()) {
        L.kv.resize(size_t(I.hp.n_head_kv));
        L.pages.resize(size_t(I.hp.n_head_kv));
    }
    for (int kh = 0; kh < I.hp.n_head_kv; kh++)
        I.maintain_clusters(il, kh, K + size_t(kh) * I.n_ctx * I.hp.head_dim, n_tokens, pool);
}

void TacticAttention::Impl::decode_group(int il, int kh, const float *Qg, const uint16_t *Kh, const uint16_t *Vh,
                                         int n_tokens, float *out, ThreadPool &pool) {
    const int D = hp.head_dim, g = hp.n_head / hp.n_head_kv;
    Layer &L = layers[size_t(il)];
    const bool needs_clusters = prm.selector != kSelectFull && prm.selector != kSelectOracle;
    if (needs_clusters || prm.debug) maintain_clusters(il, kh, Kh, n_tokens, pool);
    KeyClusters &kc = L.kv[size_t(kh)];
    if (!kc.empty() && kc.end > n_tokens) kc = KeyClusters();  // stale (cannot happen after truncate)
    if (L.vmean.size() < L.kv.size()) L.vmean.resize(L.kv.size());
    if (kc.empty()) L.vmean[size_t(kh)].clear();
    const bool have_clusters = !kc.empty();
    const double t0 = now_s();

    fits.resize(size_t(g));
    choices.assign(size_t(g), TacticChoice());
    head_scratch.resize(size_t(g));
    own.resize(size_t(g));
    for (auto &o : own) o.clear();

    // Always-kept tokens: the sinks and everything after the clustered range.
    always_list.clear();
    if (have_clusters) {
        for (int t = 0; t < kc.begin; t++) always_list.push_back(t);
        for (int t = kc.end; t < n_tokens; t++) always_list.push_back(t);
    }
    const int n_always = int(always_list.size());

    // Tactic's fit per query head (also needed by QUEST for its budget, and in debug mode).
    const bool prune = prm.selector == kSelectTacticPrune;
    // The bounded selector runs for itself and to give Quest its token budget.
    const bool bounded = have_clusters && (prm.selector == kSelectBounded || prm.selector == kSelectQuest);
    const bool run_tactic = have_clusters && (prm.selector == kSelectTactic || prm.selector == kSelectClusterOpt ||
                                              prune || (prm.debug && prm.selector != kSelectBounded));
    pruned.resize(size_t(g));
    if (bounded && prm.selector == kSelectQuest) L.pages[size_t(kh)].update(Kh, D, n_tokens);
    if (run_tactic || bounded) {
        always_scores.resize(size_t(g) * n_always);
        scores_group(Qg, g, Kh, D, always_list.data(), n_always, always_scores.data(), pool);
        cscores.resize(size_t(g) * kc.n_clusters);
        score_centroids(Qg, g, kc, cscores.data());
    }
    if (bounded) {
        BoundedConfig bc;
        bc.p = prm.p;
        bc.force_fraction = prm.force_fraction;
        bc.tail_share = prm.tail_share;
        bc.z = prm.tail_z;
        bc.margin = prm.target_margin;
        // The tail samples depend only on this step's (layer, KV head, length), not on the
        // steps before: a restored session or a reused prefix selects what the original did.
        bscr.rng.seed(prm.seed * 0x9E3779B97F4A7C15ull + uint64_t(il) * 1000003u + uint64_t(kh) * 7919u +
                      uint64_t(n_tokens) * 0xBF58476D1CE4E5B9ull + 12345u);
        select_bounded(Qg, g, Kh, D, kc, cscores.data(), always_list, always_scores.data(), n_tokens, bc, pool, bscr,
                       bgroup);
        for (int h = 0; h < g; h++) {
            if (prm.selector == kSelectBounded) {
                own[size_t(h)] = bgroup.heads[size_t(h)].kept;
            } else {  // Quest with as many tokens as the bounded selector kept for this head
                own[size_t(h)].clear();
                quest_select(Qg + size_t(h) * D, Kh, L.pages[size_t(kh)], n_tokens,
                             int(bgroup.heads[size_t(h)].kept.size()), own[size_t(h)], head_scratch[size_t(h)]);
            }
        }
    }
    if (prune) {  // candidates scored once for the group, every query head at once
        cand_clusters.clear();
        mark.assign(size_t(kc.n_clusters), 0);
        std::vector<int32_t> mine;
        for (int h = 0; h < g; h++) {
            tactic_fit(Qg + size_t(h) * D, Kh, D, kc, always_scores.data() + size_t(h) * n_always, n_always, cfg,
                       fits[size_t(h)], head_scratch[size_t(h)], cscores.data() + size_t(h) * kc.n_clusters);
            mine.clear();
            prune_candidate_clusters(fits[size_t(h)], prm.p, prm.prune_relax, mine);
            for (int32_t c : mine)
                if (!mark[size_t(c)]) {
                    mark[size_t(c)] = 1;
                    cand_clusters.push_back(c);
                }
        }
        osc.resize(kc.order.size() * size_t(g));
        score_clusters_group(Qg, g, kc, D, cand_clusters, osc.data(), pool);
    }
    if (run_tactic) {
        pool.parallel_for(g, 1, [&](int64_t hb, int64_t he) {
            for (int64_t h = hb; h < he; h++) {
                if (!prune)
                    tactic_fit(Qg + size_t(h) * D, Kh, D, kc, always_scores.data() + size_t(h) * n_always, n_always,
                               cfg, fits[size_t(h)], head_scratch[size_t(h)], cscores.data() + size_t(h) * kc.n_clusters);
                choices[size_t(h)] = tactic_choose(fits[size_t(h)], prm.p);
                if (prune)
                    tactic_prune(fits[size_t(h)], kc, Qg + size_t(h) * D, Kh, D, always_list,
                                 always_scores.data() + size_t(h) * n_always, prm.p, prm.prune_relax, pruned[size_t(h)],
                                 osc.data(), g, int(h));
            }
        });
    }

    // Exact scores of every token: the oracle needs them, and debug mode reports true masses.
    const bool need_full = prm.debug || (prm.selector == kSelectOracle) ||
                           (prm.selector == kSelectClusterOpt && have_clusters);
    if (need_full) {
        full_scores.resize(size_t(g) * n_tokens);
        scores_group(Qg, g, Kh, D, nullptr, n_tokens, full_scores.data(), pool);
    }

    // Per-head selections, then their union (ascending token order).
    mark.assign(size_t(n_tokens), 0);
    bool all = prm.selector == kSelectFull || (!have_clusters && prm.selector != kSelectOracle);
    if (!all) {
        for (int h = 0; h < g; h++) {
            std::vector<int32_t> &sel = own[size_t(h)];
            if (prm.selector == kSelectTactic) {
                sel = always_list;
                append_prefix_tokens(fits[size_t(h)], kc, choices[size_t(h)].n_clusters, sel);
            } else if (prune) {
                sel = pruned[size_t(h)].tokens;
            } else if (prm.selector == kSelectQuest || prm.selector == kSelectBounded) {
                // selected above
            } else {  // ORACLE or CLUSTER_OPT: exact weights decide
                const float *s = full_scores.data() + size_t(h) * n_tokens;
                const float m = *std::max_element(s, s + n_tokens);
                std::vector<int32_t> cand;
                if (prm.selector == kSelectOracle) {
                    cand.resize(size_t(n_tokens));
                    std::iota(cand.begin(), cand.end(), 0);
                    std::sort(cand.begin(), cand.end(), [&](int32_t a, int32_t b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
                } else {
                    cand = always_list;
                    append_prefix_tokens(fits[size_t(h)], kc, kc.n_clusters, cand);
                }
                double Z = 0;
                for (int t = 0; t < n_tokens; t++) Z += std::exp(double(s[t]) - m);
                const double target = double(prm.p) * Z;
                double cum = 0;
                for (int32_t t : cand) {
                    sel.push_back(t);
                    cum += std::exp(double(s[t]) - m);
                    if (prm.p < 1.f && cum >= target) break;
                }
            }
            for (int32_t t : sel) mark[size_t(t)] = 1;
        }
    }
    // The unattended tokens' share of the output, estimated from cluster value means
    // (bounded selector, block mode: clusters never change members there). The tokens
    // outside the clusters (sinks, recent window, not yet clustered: no cluster mean to
    // stand for them) are then attended whole.
    const bool tail_est = !all && bounded && prm.selector == kSelectBounded && prm.tail_values &&
                          prm.block_size > 0 && prm.force_fraction <= 0.f;
    if (tail_est)
        for (int32_t t : always_list) mark[size_t(t)] = 1;
    list.clear();
    for (int t = 0; t < n_tokens; t++)
        if (all || mark[size_t(t)]) list.push_back(t);
    if (tail_est && int(list.size()) < n_tokens) {
        extend_value_means(kc, Vh, D, L.vmean[size_t(kh)]);
        tail_partial(kc, L.vmean[size_t(kh)].data(), D, g, bscr.scored.data(), bscr.osc.data(), mark.data(),
                     cscores.data(), bgroup, tail, pool);
    }
    t_select += now_s() - t0;
    attend_group(Qg, g, Kh, Vh, D, list.data(), int(list.size()), out, pool, attn,
                 tail_est && int(list.size()) < n_tokens ? &tail : nullptr);
    if (L.attended.size() < size_t(hp.n_head_kv)) L.attended.resize(size_t(hp.n_head_kv));
    L.attended[size_t(kh)] = list;
    share_sum += double(g) * double(list.size()) / double(n_tokens);
    share_n += g;

    // Debug mode: the oracle's count per head at p and the union of the group's oracle sets.
    std::vector<int> oracle_n(static_cast<size_t>(g), -1);
    int oracle_union = -1;
    std::vector<double> true_Z(static_cast<size_t>(g), 0.0), true_m(static_cast<size_t>(g), 0.0);
    if (prm.debug) {
        std::vector<uint8_t> um(static_cast<size_t>(n_tokens), 0);
        std::vector<int32_t> idx(static_cast<size_t>(n_tokens));
        for (int h = 0; h < g; h++) {
            const float *s = full_scores.data() + size_t(h) * n_tokens;
            const float m = *std::max_element(s, s + n_tokens);
            double Z = 0;
            for (int t = 0; t < n_tokens; t++) Z += std::exp(double(s[t]) - m);
            true_Z[size_t(h)] = Z;
            true_m[size_t(h)] = m;
            std::iota(idx.begin(), idx.end(), 0);
            std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
            double cum = 0;
            int cnt = 0;
            for (int32_t t : idx) {
                cum += std::exp(double(s[t]) - m);
                um[size_t(t)] = 1;
                cnt++;
                if (prm.p < 1.f && cum >= double(prm.p) * Z) break;
            }
            oracle_n[size_t(h)] = cnt;
        }
        oracle_union = int(std::count(um.begin(), um.end(), uint8_t(1)));
    }

    // Statistics of this step.
    for (int h = 0; h < g; h++) {
        TacticHeadStat st;
        st.layer = il;
        st.head = kh * g + h;
        st.n_tokens = n_tokens;
        st.n_selected = all ? n_tokens : int(own[size_t(h)].size());
        st.n_attended = int(list.size());
        st.est_mass = 1.f;
        if (!all && bounded && prm.selector == kSelectBounded) st.est_mass = bgroup.heads[size_t(h)].est_mass;
        else if (!all && prune) st.est_mass = pruned[size_t(h)].est_mass;
        else if (!all && run_tactic) st.est_mass = choices[size_t(h)].est_mass;
        st.n_scored = bounded ? bgroup.n_scored : 0;
        st.oracle_tokens = oracle_n[size_t(h)];
        st.oracle_union = oracle_union;
        if (prm.debug && bounded && !all) {
            const BoundedHead &bh = bgroup.heads[size_t(h)];
            st.est_over_true_total =
                float((bh.exact + bh.tail_bound) * std::exp(double(bh.m) - true_m[size_t(h)]) / true_Z[size_t(h)]);
        }
        if (prm.debug) {
            const float *s = full_scores.data() + size_t(h) * n_tokens;
            const float m = *std::max_element(s, s + n_tokens);
            double Z = 0, sel_mass = 0;
            for (int t = 0; t < n_tokens; t++) Z += std::exp(double(s[t]) - m);
            if (all) {
                sel_mass = Z;
            } else {
                for (int32_t t : own[size_t(h)]) sel_mass += std::exp(double(s[t]) - m);
            }
            st.true_mass = float(sel_mass / Z);
        }
        L.stats.push_back(st);
    }
    if (prm.debug) record_token_detail(il, kh, n_tokens, all, bounded, kc);
    if (prm.debug && have_clusters && run_tactic) debug_eval(il, kh, Qg, Kh, n_tokens, kc, pool);
}

void TacticAttention::Impl::record_token_detail(int il, int kh, int n_tokens, bool all, bool bounded,
                                                const KeyClusters &kc) {
    const int g = hp.n_head / hp.n_head_kv;
    Layer &L = layers[size_t(il)];
    if (L.detail.size() < size_t(hp.n_head)) L.detail.resize(size_t(hp.n_head));
    for (int h = 0; h < g; h++) {
        TokenDetail &d = L.detail[size_t(kh * g + h)];
        const float *s = full_scores.data() + size_t(h) * n_tokens;
        const float m = *std::max_element(s, s + n_tokens);
        double Z = 0;
        for (int t = 0; t < n_tokens; t++) Z += std::exp(double(s[t]) - m);
        d.w.resize(size_t(n_tokens));
        d.flags.assign(size_t(n_tokens), 0);
        d.crank.assign(size_t(n_tokens), -1);
        for (int t = 0; t < n_tokens; t++) d.w[size_t(t)] = float(std::exp(double(s[t]) - m) / Z);
        if (all) {
            for (auto &f : d.flags) f = kTokKept | kTokAttended | kTokScored;
            continue;
        }
        for (int32_t t : own[size_t(h)]) d.flags[size_t(t)] |= kTokKept;
        for (int32_t t : list) d.flags[size_t(t)] |= kTokAttended;
        if (!bounded) continue;
        for (int32_t t : always_list) d.flags[size_t(t)] |= kTokScored;
        const auto &ord = bscr.corder[size_t(h)];
        for (size_t r = 0; r < ord.size(); r++) {
            const int c = ord[r];
            for (int o = kc.offsets[size_t(c)]; o < kc.offsets[size_t(c) + 1]; o++) {
                const int32_t t = kc.order[size_t(o)];
                d.crank[size_t(t)] = int32_t(r);
                if (bscr.scored[size_t(c)]) d.flags[size_t(t)] |= kTokScored;
            }
        }
    }
}

void TacticAttention::Impl::debug_eval(int il, int kh, const float *Qg, const uint16_t *Kh, int n_tokens,
                                       const KeyClusters &kc, ThreadPool &pool) {
    const int D = hp.head_dim, g = hp.n_head / hp.n_head_kv;
    Layer &L = layers[size_t(il)];
    L.pages[size_t(kh)].update(Kh, D, n_tokens);
    const int n_p = int(prm.eval_ps.size());
    std::vector<std::vector<double>> w(static_cast<size_t>(g));  // exp(s - m) per token, per head
    std::vector<double> Z(static_cast<size_t>(g));
    for (int h = 0; h < g; h++) {
        const float *s = full_scores.data() + size_t(h) * n_tokens;
        const float m = *std::max_element(s, s + n_tokens);
        w[size_t(h)].resize(size_t(n_tokens));
        double z = 0;
        for (int t = 0; t < n_tokens; t++) z += w[size_t(h)][size_t(t)] = std::exp(double(s[t]) - m);
        Z[size_t(h)] = z;
    }
    // Tactic at every p: per-head selections, then their union.
    std::vector<std::vector<int32_t>> sel(static_cast<size_t>(g) * n_p);
    std::vector<TacticChoice> ch(static_cast<size_t>(g) * n_p);
    std::vector<int> union_n(static_cast<size_t>(n_p));
    std::vector<std::vector<double>> union_mass(static_cast<size_t>(n_p), std::vector<double>(size_t(g)));
    std::vector<uint8_t> um;
    for (int pi = 0; pi < n_p; pi++) {
        um.assign(size_t(n_tokens), 0);
        for (int h = 0; h < g; h++) {
            auto &s = sel[size_t(h) * n_p + pi];
            ch[size_t(h) * n_p + pi] = tactic_choose(fits[size_t(h)], prm.eval_ps[size_t(pi)]);
            s = always_list;
            append_prefix_tokens(fits[size_t(h)], kc, ch[size_t(h) * n_p + pi].n_clusters, s);
            for (int32_t t : s) um[size_t(t)] = 1;
        }
        int cnt = 0;
        for (int t = 0; t < n_tokens; t++)
            if (um[size_t(t)]) {
                cnt++;
                for (int h = 0; h < g; h++) union_mass[size_t(pi)][size_t(h)] += w[size_t(h)][size_t(t)];
            }
        union_n[size_t(pi)] = cnt;
    }
    std::vector<TacticHeadEval> rows(static_cast<size_t>(g) * n_p);
    pool.parallel_for(g, 1, [&](int64_t hb, int64_t he) {
        std::vector<double> sorted, cum, corder_cum;
        std::vector<int32_t> cand, qsel;
        std::vector<float> qscratch;
        PrunedChoice pc;
        for (int64_t h = hb; h < he; h++) {
            const auto &wh = w[size_t(h)];
            sorted = wh;
            std::sort(sorted.begin(), sorted.end(), std::greater<double>());
            cum.resize(sorted.size());
            std::partial_sum(sorted.begin(), sorted.end(), cum.begin());
            cand = always_list;
            append_prefix_tokens(fits[size_t(h)], kc, kc.n_clusters, cand);
            corder_cum.resize(cand.size());
            double c = 0;
            for (size_t i = 0; i < cand.size(); i++) corder_cum[i] = c += wh[size_t(cand[i])];
            for (int pi = 0; pi < n_p; pi++) {
                const float p = prm.eval_ps[size_t(pi)];
                const auto &s = sel[size_t(h) * n_p + pi];
                TacticHeadEval e;
                e.layer = il;
                e.head = int(kh * g + h);
                e.n_tokens = n_tokens;
                e.p = p;
                e.tactic_tokens = int(s.size());
                e.tactic_est_mass = ch[size_t(h) * n_p + pi].est_mass;
                double m = 0;
                for (int32_t t : s) m += wh[size_t(t)];
                e.tactic_true_mass = float(m / Z[size_t(h)]);
                e.oracle_tokens = count_for_mass(cum, Z[size_t(h)], p);
                e.cluster_opt_tokens = count_for_mass(corder_cum, Z[size_t(h)], p);
                qsel.clear();
                quest_select(Qg + size_t(h) * D, Kh, L.pages[size_t(kh)], n_tokens, e.tactic_tokens, qsel, qscratch);
                double qm = 0;
                for (int32_t t : qsel) qm += wh[size_t(t)];
                e.quest_true_mass = float(qm / Z[size_t(h)]);
                e.union_tokens = union_n[size_t(pi)];
                e.union_true_mass = float(union_mass[size_t(pi)][size_t(h)] / Z[size_t(h)]);
                e.degenerate = fits[size_t(h)].degenerate ? 1 : 0;
                tactic_prune(fits[size_t(h)], kc, Qg + size_t(h) * D, Kh, D, always_list,
                             always_scores.data() + size_t(h) * always_list.size(), p, prm.prune_relax, pc);
                e.prune_tokens = int(pc.tokens.size());
                e.prune_candidates = pc.n_candidates;
                e.prune_est_mass = pc.est_mass;
                double pm = 0;
                for (int32_t t : pc.tokens) pm += wh[size_t(t)];
                e.prune_true_mass = float(pm / Z[size_t(h)]);
                rows[size_t(h) * n_p + pi] = e;
            }
        }
    });
    L.eval.insert(L.eval.end(), rows.begin(), rows.end());
}

namespace {
constexpr int32_t kStateMagic = 0x314c4354;  // "TCL1"

// The parameters that decide what the clusters are: saved clusters are used only by a
// context that would have built the same ones.
std::vector<int32_t> cluster_signature(const TacticParams &p) {
    return {p.cluster_size, p.block_size, p.n_sink, p.n_recent, p.recluster_interval, p.incremental ? 1 : 0,
            int32_t(uint32_t(p.seed)), int32_t(uint32_t(p.seed >> 32))};
}
}  // namespace

struct TacticAttention::SavedClusters {
    std::vector<std::vector<KeyClusters>> layers;  // per layer: per KV head, or empty
};

std::vector<uint8_t> TacticAttention::state_bytes() const {
    std::vector<uint8_t> out;
    auto i32 = [&out](int32_t v) {
        const auto *b = reinterpret_cast<const uint8_t *>(&v);
        out.insert(out.end(), b, b + 4);
    };
    i32(kStateMagic);
    for (int32_t v : cluster_signature(impl_->prm)) i32(v);
    i32(int32_t(impl_->layers.size()));
    for (const auto &L : impl_->layers) {
        i32(int32_t(L.kv.size()));
        for (const auto &kc : L.kv) {
            i32(kc.empty() ? 0 : 1);
            if (!kc.empty()) write_clusters(kc, out);
        }
    }
    return out;
}

std::shared_ptr<TacticAttention::SavedClusters> TacticAttention::parse_state(const uint8_t *p, size_t n,
                                                                             int n_past) const {
    ByteCursor in{p, p + n};
    TACTIC_CHECK(in.i32() == kStateMagic, TACTIC_ERR_FORMAT, "context state: Tactic section damaged (magic)");
    bool same = true;
    for (int32_t v : cluster_signature(impl_->prm)) same = (in.i32() == v) && same;
    const int n_layer = in.i32();
    TACTIC_CHECK(n_layer == impl_->hp.n_layer, TACTIC_ERR_FORMAT, "context state: Tactic section damaged (layers)");
    auto saved = std::make_shared<SavedClusters>();
    saved->layers.resize(size_t(n_layer));
    for (int il = 0; il < n_layer; il++) {
        const int n_kv = in.i32();
        TACTIC_CHECK(n_kv == 0 || n_kv == impl_->hp.n_head_kv, TACTIC_ERR_FORMAT,
                     "context state: Tactic section damaged (KV heads)");
        for (int kh = 0; kh < n_kv; kh++) {
            const int has = in.i32();
            TACTIC_CHECK(has == 0 || has == 1, TACTIC_ERR_FORMAT, "context state: Tactic section damaged (flag)");
            saved->layers[size_t(il)].push_back(has ? read_clusters(in, impl_->hp.head_dim, n_past) : KeyClusters());
        }
    }
    TACTIC_CHECK(in.p == in.end, TACTIC_ERR_FORMAT, "context state: Tactic section damaged (trailing bytes)");
    return same ? saved : nullptr;
}

void TacticAttention::adopt_state(const SavedClusters &saved, const std::function<const uint16_t *(int, int)> &keys) {
    truncate(0);
    for (size_t il = 0; il < saved.layers.size(); il++) {
        if (saved.layers[il].empty()) continue;
        Impl::Layer &L = impl_->layers[il];
        L.kv = saved.layers[il];
        L.pages.assign(L.kv.size(), QuestPages());
        for (size_t kh = 0; kh < L.kv.size(); kh++)
            if (!L.kv[kh].empty()) L.kv[kh].gather_keys(keys(int(il), int(kh)));
    }
}

void TacticAttention::truncate(int n_keep) {
    for (auto &L : impl_->layers) {
        for (auto &kc : L.kv) {
            if (kc.empty()) continue;
            // The recent window of the shortened cache must be attended exactly again:
            // clusters may cover tokens before n_keep - n_recent only.
            const int limit = std::max(kc.begin, n_keep - impl_->prm.n_recent);
            if (impl_->prm.block_size > 0) kc.drop_blocks_after(limit);
            else if (kc.base_end > limit) kc = KeyClusters();  // K-means saw dropped tokens
            else kc.drop_from(limit);
        }
        // Value means of dropped clusters go with them (blocks drop from the end).
        for (size_t kh = 0; kh < L.vmean.size() && kh < L.kv.size(); kh++)
            if (L.vmean[kh].size() > size_t(L.kv[kh].n_clusters) * size_t(impl_->hp.head_dim))
                L.vmean[kh].resize(size_t(L.kv[kh].n_clusters) * size_t(impl_->hp.head_dim));
        for (auto &pg : L.pages) pg.truncate(n_keep);
    }
    impl_->last_step_tokens = -1;
}

const std::vector<TacticHeadStat> &TacticAttention::last_stats() const {
    impl_->flat_stats.clear();
    for (const auto &L : impl_->layers) impl_->flat_stats.insert(impl_->flat_stats.end(), L.stats.begin(), L.stats.end());
    return impl_->flat_stats;
}

const std::vector<TacticHeadEval> &TacticAttention::last_eval() const {
    impl_->flat_eval.clear();
    for (const auto &L : impl_->layers) impl_->flat_eval.insert(impl_->flat_eval.end(), L.eval.begin(), L.eval.end());
    return impl_->flat_eval;
}

void TacticAttention::set_selection(int selector, float p) {
    TACTIC_CHECK(p > 0.f && p <= 1.f, TACTIC_ERR_INVALID_ARGUMENT, "tactic_p must be in (0, 1]");
    TACTIC_CHECK(selector >= kSelectTactic && selector <= kSelectBounded, TACTIC_ERR_INVALID_ARGUMENT,
                 "unknown Tactic selector");
    impl_->prm.selector = selector;
    impl_->prm.p = p;
}

void TacticAttention::set_debug(bool on) { impl_->prm.debug = on; }

void TacticAttention::set_debug_noise(float sigma, uint64_t seed) {
    TACTIC_CHECK(sigma >= 0.f && sigma <= 1.f, TACTIC_ERR_INVALID_ARGUMENT, "the noise sigma must be in [0, 1]");
    impl_->noise_sigma = sigma;
    impl_->noise_seed = seed;
}

void TacticAttention::set_bounded_options(float margin, bool tail_values) {
    TACTIC_CHECK(margin >= 0.f && margin <= 1.f, TACTIC_ERR_INVALID_ARGUMENT, "the target margin must be in [0, 1]");
    impl_->prm.target_margin = margin;
    impl_->prm.tail_values = tail_values;
}

const TacticParams &TacticAttention::params() const { return impl_->prm; }
double TacticAttention::clustering_seconds() const { return impl_->t_cluster; }
double TacticAttention::selection_seconds() const { return impl_->t_select; }
void TacticAttention::reset_timings() {
    impl_->t_cluster = impl_->t_select = 0;
    impl_->share_sum = 0;
    impl_->share_n = 0;
}
double TacticAttention::attended_share() const {
    return impl_->share_n ? impl_->share_sum / double(impl_->share_n) : -1.0;
}
int TacticAttention::clustered_end(int il, int kh) const {
    const auto &L = impl_->layers[size_t(il)];
    if (size_t(kh) >= L.kv.size() || L.kv[size_t(kh)].empty()) return -1;
    return L.kv[size_t(kh)].end;
}
const std::vector<int32_t> &TacticAttention::last_attended(int il, int kh) const {
    static const std::vector<int32_t> none;
    const auto &L = impl_->layers[size_t(il)];
    return size_t(kh) < L.attended.size() ? L.attended[size_t(kh)] : none;
}

const TacticAttention::TokenDetail &TacticAttention::last_token_detail(int il, int head) const {
    static const TokenDetail none;
    const auto &L = impl_->layers[size_t(il)];
    return size_t(head) < L.detail.size() ? L.detail[size_t(head)] : none;
}

}  // namespace tactic
