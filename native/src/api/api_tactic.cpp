// C ABI: Tactic statistics and the selector switch used by the evaluation scripts.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstring>
#include <mutex>
#include <vector>

#include "../cpu/attention.h"

#include "../cpu_features.h"
#include "../forward.h"
#include "../tactic/kernels.h"
#include "../tactic/tactic_attention.h"
#include "guard.h"
#include "tactic_internal.h"  // defines hooks declared there
#include "handles.h"

using tactic::guard;

namespace {

std::unique_lock<std::mutex> busy_lock(tactic_context *c) {
    std::unique_lock<std::mutex> lock(c->busy, std::try_to_lock);
    TACTIC_CHECK(lock.owns_lock(), TACTIC_ERR_BUSY, "this context is in use by another thread");
    return lock;
}

tactic::TacticAttention &tactic_of(tactic_context *ctx) {
    tactic::TacticAttention *ta = ctx->ctx->tactic();
    TACTIC_CHECK(ta, TACTIC_ERR_INVALID_ARGUMENT, "this context uses full attention (attention = TACTIC_ATTN_FULL)");
    return *ta;
}

}  // namespace

extern "C" {

TACTIC_API tactic_status tactic_get_head_stats(tactic_context *ctx, tactic_head_stats *out, int32_t cap,
                                               int32_t *n_out) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(ctx && n_out && cap >= 0 && (out || cap == 0), "ctx and n_out must not be NULL");
        auto lock = busy_lock(ctx);
        tactic::TacticAttention *ta = ctx->ctx->tactic();
        static const std::vector<tactic::TacticHeadStat> none;
        const auto &st = ta ? ta->last_stats() : none;
        *n_out = int32_t(st.size());
        TACTIC_REQUIRE_ARG(int64_t(st.size()) <= cap, "cap is too small: " + std::to_string(st.size()) + " entries");
        for (size_t i = 0; i < st.size(); i++) {
            tactic_head_stats &o = out[i];
            o.layer = st[i].layer;
            o.head = st[i].head;
            o.n_tokens = st[i].n_tokens;
            o.n_selected = st[i].n_selected;
            o.n_attended = st[i].n_attended;
            o.est_mass = st[i].est_mass;
            o.true_mass = st[i].true_mass;
            o.n_scored = st[i].n_scored;
            o.oracle_tokens = st[i].oracle_tokens;
            o.oracle_union = st[i].oracle_union;
            o.est_over_true_total = st[i].est_over_true_total;
        }
    });
}

TACTIC_API tactic_status tactic_get_head_eval(tactic_context *ctx, tactic_head_eval *out, int32_t cap,
                                              int32_t *n_out) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(ctx && n_out && cap >= 0 && (out || cap == 0), "ctx and n_out must not be NULL");
        auto lock = busy_lock(ctx);
        const auto &ev = tactic_of(ctx).last_eval();
        *n_out = int32_t(ev.size());
        TACTIC_REQUIRE_ARG(int64_t(ev.size()) <= cap, "cap is too small: " + std::to_string(ev.size()) + " entries");
        for (size_t i = 0; i < ev.size(); i++) {
            const tactic::TacticHeadEval &e = ev[i];
            tactic_head_eval &o = out[i];
            o.layer = e.layer;
            o.head = e.head;
            o.n_tokens = e.n_tokens;
            o.p = e.p;
            o.tactic_tokens = e.tactic_tokens;
            o.tactic_est_mass = e.tactic_est_mass;
            o.tactic_true_mass = e.tactic_true_mass;
            o.oracle_tokens = e.oracle_tokens;
            o.cluster_opt_tokens = e.cluster_opt_tokens;
            o.quest_true_mass = e.quest_true_mass;
            o.union_tokens = e.union_tokens;
            o.union_true_mass = e.union_true_mass;
            o.degenerate = e.degenerate;
            o.prune_tokens = e.prune_tokens;
            o.prune_candidates = e.prune_candidates;
            o.prune_est_mass = e.prune_est_mass;
            o.prune_true_mass = e.prune_true_mass;
        }
    });
}

TACTIC_API tactic_status tactic_get_head_tokens(tactic_context *ctx, int32_t layer, int32_t head, float *w,
                                                uint8_t *flags, int32_t *crank, int32_t cap, int32_t *n_out) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(ctx && n_out && cap >= 0, "ctx and n_out must not be NULL");
        auto lock = busy_lock(ctx);
        tactic::TacticAttention &ta = tactic_of(ctx);
        TACTIC_REQUIRE_ARG(layer >= 0 && layer < ctx->model->weights().hp.n_layer && head >= 0 &&
                               head < ctx->model->weights().hp.n_head,
                           "layer or head out of range");
        const auto &d = ta.last_token_detail(layer, head);
        const int32_t n = int32_t(d.w.size());
        *n_out = n;
        TACTIC_REQUIRE_ARG(n <= cap, "cap is too small: " + std::to_string(n) + " tokens");
        if (w) std::copy(d.w.begin(), d.w.end(), w);
        if (flags) std::copy(d.flags.begin(), d.flags.end(), flags);
        if (crank) std::copy(d.crank.begin(), d.crank.end(), crank);
    });
}

TACTIC_API tactic_status tactic_set_selection(tactic_context *ctx, int32_t selector, float p) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(ctx, "ctx must not be NULL");
        auto lock = busy_lock(ctx);
        tactic_of(ctx).set_selection(selector, p);
    });
}

TACTIC_API tactic_status tactic_set_debug_noise(tactic_context *ctx, float sigma, uint64_t seed) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(ctx, "ctx must not be NULL");
        auto lock = busy_lock(ctx);
        tactic_of(ctx).set_debug_noise(sigma, seed);
    });
}

TACTIC_API tactic_status tactic_set_bounded_options(tactic_context *ctx, float margin, int32_t tail_values) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(ctx, "ctx must not be NULL");
        auto lock = busy_lock(ctx);
        tactic_of(ctx).set_bounded_options(margin, tail_values != 0);
    });
}

TACTIC_API tactic_status tactic_bench_attention(const uint16_t *K, const uint16_t *V, const float *q,
                                                int32_t n_tokens, int32_t head_dim, int32_t n_head,
                                                int32_t n_head_kv, int32_t selector, float p,
                                                int32_t n_threads, int32_t n_iter, double *out) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(K && V && q && out, "K, V, q and out must not be NULL");
        TACTIC_REQUIRE_ARG(n_tokens > 0 && head_dim > 0 && n_head_kv > 0 && n_head % n_head_kv == 0 && n_iter > 0 &&
                               n_threads > 0 && n_threads <= 1024,
                           "bad sizes");
        tactic::ThreadPool pool(n_threads);
        std::vector<float> o(size_t(n_head) * head_dim);
        // Thread CPU time with one thread: immune to preemption on a loaded machine.
        struct Clock {
            static double now_s(bool cpu) {
                if (cpu) {
                    timespec ts;
                    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
                    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
                }
                return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
            }
        };
        const bool cpu = n_threads == 1;
        const int g = n_head / n_head_kv;
        std::vector<double> times;
        auto median = [&] {
            std::sort(times.begin(), times.end());
            return times[times.size() / 2];
        };
        if (selector < 0) {
            for (int it = 0; it < n_iter; it++) {
                const double t0 = Clock::now_s(cpu);
                for (int h = 0; h < n_head_kv; h++)
                    tactic::attention_split(q + size_t(h) * g * head_dim, g, head_dim, K + size_t(h) * n_tokens * head_dim,
                                            V + size_t(h) * n_tokens * head_dim, 0, n_tokens, o.data() + size_t(h) * g * head_dim,
                                            pool);
                times.push_back(Clock::now_s(cpu) - t0);
            }
            out[0] = median();
            out[1] = n_tokens;
            out[2] = 0;
            return;
        }
        tactic::HParams hp;
        hp.n_layer = 1;
        hp.n_head = n_head;
        hp.n_head_kv = n_head_kv;
        hp.head_dim = head_dim;
        tactic::TacticParams tp;
        tp.p = p;
        tp.selector = selector;
        tp.n_sink = 4;
        tp.n_recent = 64;
        tactic::TacticAttention ta(tp, hp, n_tokens);
        ta.decode(0, q, K, V, n_tokens, o.data(), pool);  // clusters
        out[2] = ta.clustering_seconds();
        double attended = 0;
        for (int it = 0; it < n_iter; it++) {
            const double t0 = Clock::now_s(cpu);
            ta.decode(0, q, K, V, n_tokens, o.data(), pool);
            times.push_back(Clock::now_s(cpu) - t0);
            for (const auto &s : ta.last_stats()) attended += s.n_attended;
        }
        out[0] = median();
        out[1] = attended / n_iter / n_head;
    });
}

TACTIC_API tactic_status tactic_set_debug(tactic_context *ctx, int32_t on) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(ctx, "ctx must not be NULL");
        auto lock = busy_lock(ctx);
        tactic_of(ctx).set_debug(on != 0);
    });
}

TACTIC_API tactic_status tactic_bench_tactic_dots(const float *Q, int32_t g, const uint16_t *keys, int32_t n,
                                                 int32_t head_dim, int32_t impl, float *out) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(Q && keys && out, "tactic_dots: Q, keys and out must not be NULL");
        TACTIC_REQUIRE_ARG(g > 0 && n >= 0 && head_dim > 0 && (impl == 2 || impl == 3),
                           "tactic_dots: g, n, head_dim or impl out of range");
        TACTIC_CHECK(tactic::cpu_has_avx2_fma_f16c() && (impl == 2 || tactic::cpu_has_avx512_vnni()),
                     TACTIC_ERR_UNSUPPORTED, "tactic_dots: this CPU cannot run the kernel asked for");
        if (impl == 3) {
            TACTIC_REQUIRE_ARG(head_dim % 16 == 0, "tactic_dots: the AVX-512 kernel needs head_dim % 16 == 0");
            std::vector<float> qr(size_t((g + 3) / 4) * head_dim * 16);
            tactic::tk::avx512::repeat_heads(Q, g, head_dim, qr.data());
            return tactic::tk::avx512::dots_keys_f16(qr.data(), g, keys, n, head_dim, out, g);
        }
        for (int o = 0; o < n; o++) tactic::tk::avx2::dots_group_f16(Q, g, keys + size_t(o) * head_dim, head_dim,
                                                                     out + size_t(o) * g);
    });
}

}  // extern "C"
