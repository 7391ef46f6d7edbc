// The transformer pass on the CPU. One function serves every architecture: what
// differs (norms, biases, QK-norm, RoPE style, activation, sliding windows) is data
// in HParams and in which tensors the model has.
#include "forward.h"

#include <chrono>
#include <cmath>

#include "common.h"
#include "cpu/attention.h"
#include "cpu/matmul.h"
#include "cpu/ops.h"
#include "tactic/tactic_attention.h"

namespace tactic {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
}  // namespace

struct Context::Scratch {
    std::vector<float> x, h, q, k, v, att, tmp, gate, up, out_rows;
    std::vector<float> rope_cos, rope_sin;
    std::vector<uint8_t> act;  // quantized activations for matmul
};

Context::Context(const Model &model, const tactic_context_params &p) : model_(model), params_(p) {
    const HParams &hp = model.hp;
    TACTIC_CHECK(p.n_ctx >= 0, TACTIC_ERR_INVALID_ARGUMENT, "n_ctx must be >= 0, got " + std::to_string(p.n_ctx));
    n_ctx_ = p.n_ctx > 0 ? p.n_ctx : hp.n_ctx_train;
    TACTIC_CHECK(n_ctx_ <= (1 << 24), TACTIC_ERR_INVALID_ARGUMENT, "n_ctx " + std::to_string(n_ctx_) + " is too large");
    TACTIC_CHECK(p.n_threads >= 0 && p.n_threads <= 1024, TACTIC_ERR_INVALID_ARGUMENT,
                 "n_threads must be in [0, 1024], got " + std::to_string(p.n_threads));
    TACTIC_CHECK(p.n_batch >= 0, TACTIC_ERR_INVALID_ARGUMENT, "n_batch must be >= 0");
    TACTIC_CHECK(p.attention >= TACTIC_ATTN_AUTO && p.attention <= TACTIC_ATTN_TACTIC, TACTIC_ERR_INVALID_ARGUMENT,
                 "attention must be 0 (auto), 1 (full) or 2 (tactic)");
    TACTIC_CHECK(p.tactic_p > 0.f && p.tactic_p <= 1.f, TACTIC_ERR_INVALID_ARGUMENT, "tactic_p must be in (0, 1]");
    TACTIC_CHECK(p.cluster_size >= 1 && p.cluster_size <= 4096, TACTIC_ERR_INVALID_ARGUMENT,
                 "cluster_size must be in [1, 4096]");
    TACTIC_CHECK(p.n_sink >= 0 && p.n_recent >= 0 && p.recluster_interval >= 0 && p.tactic_min_ctx >= 0,
                 TACTIC_ERR_INVALID_ARGUMENT, "n_sink, n_recent, recluster_interval and tactic_min_ctx must be >= 0");
    TACTIC_CHECK(p.tactic_block_size >= 0 && p.tactic_force_fraction >= 0.f && p.tactic_force_fraction <= 1.f,
                 TACTIC_ERR_INVALID_ARGUMENT, "tactic_block_size must be >= 0 and tactic_force_fraction in [0, 1]");
    n_batch_ = p.n_batch > 0 ? p.n_batch : 512;
    n_batch_ = std::min(n_batch_, n_ctx_);
    const int n_threads = p.n_threads > 0 ? p.n_threads : ThreadPool::hardware_threads();
    kv_.allocate(hp.n_layer, hp.n_head_kv, n_ctx_, hp.head_dim);
    pool_ = std::make_unique<ThreadPool>(n_threads);
    scratch_ = std::make_unique<Scratch>();
    if (p.attention != TACTIC_ATTN_FULL) {
        TacticParams tp;
        tp.p = p.tactic_p;
        tp.cluster_size = p.cluster_size;
        tp.recluster_interval = p.recluster_interval;
        tp.n_sink = p.n_sink;
        tp.n_recent = p.n_recent;
        tp.debug = p.tactic_debug != 0;
        tp.seed = p.seed;
        tp.selector = p.tactic_selector;
        tp.incremental = p.tactic_incremental != 0;
        tp.block_size = p.tactic_block_size;
        tp.force_fraction = p.tactic_force_fraction;
        tactic_ = std::make_unique<TacticAttention>(tp, hp, n_ctx_);
    }
}

Context::~Context() = default;

bool Context::use_tactic(int n_tokens) const {
    if (!tactic_) return false;
    if (params_.attention == TACTIC_ATTN_TACTIC) return true;
    return n_tokens >= params_.tactic_min_ctx;
}

const float *Context::logits(int row) const {
    if (row < 0) row += n_logit_rows_;
    if (row < 0 || row >= n_logit_rows_) return nullptr;
    return logits_.data() + size_t(row) * size_t(model_.hp.n_vocab);
}

void Context::truncate(int n_keep) {
    TACTIC_CHECK(n_keep >= 0 && n_keep <= n_past_, TACTIC_ERR_INVALID_ARGUMENT,
                 "truncate: n_keep " + std::to_string(n_keep) + " is outside [0, " + std::to_string(n_past_) + "]");
    n_past_ = n_keep;
    if (tactic_) tactic_->truncate(n_keep);
}

void Context::timings(double *out, int n, bool reset) {
    const double vals[6] = {t_prefill_, tactic_ ? tactic_->clustering_seconds() : 0.0, t_decode_, t_decode_attn_,
                            tactic_ ? tactic_->selection_seconds() : 0.0, tactic_ ? tactic_->attended_share() : -1.0};
    for (int i = 0; i < n && i < 6; i++) out[i] = vals[i];
    if (reset) {
        t_prefill_ = t_decode_ = t_decode_attn_ = 0;
        if (tactic_) tactic_->reset_timings();
    }
}

void Context::eval(const int32_t *tokens, int n, bool logits_all) {
    const HParams &hp = model_.hp;
    TACTIC_CHECK(n > 0, TACTIC_ERR_INVALID_ARGUMENT, "eval: no tokens");
    TACTIC_CHECK(tokens, TACTIC_ERR_INVALID_ARGUMENT, "eval: tokens is NULL");
    for (int i = 0; i < n; i++)
        TACTIC_CHECK(tokens[i] >= 0 && tokens[i] < hp.n_vocab, TACTIC_ERR_INVALID_ARGUMENT,
                     "eval: token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                         " is outside the vocabulary [0, " + std::to_string(hp.n_vocab) + ")");
    if (int64_t(n_past_) + n > n_ctx_)
        fail(TACTIC_ERR_CONTEXT_FULL, "the context holds " + std::to_string(n_ctx_) + " tokens: " +
                                          std::to_string(n_past_) + " cached + " + std::to_string(n) + " new = " +
                                          std::to_string(n_past_ + n) + " do not fit");
    cancel_.store(false);
    n_logit_rows_ = 0;
    const size_t rows = logits_all ? size_t(n) : 1;
    logits_.resize(rows * size_t(hp.n_vocab));
    const auto t0 = Clock::now();
    for (int b = 0; b < n; b += n_batch_) {
        const int nb = std::min(n_batch_, n - b);
        forward_batch(tokens + b, nb, n_past_, logits_all || b + nb == n);
        n_past_ += nb;
    }
    (n == 1 ? t_decode_ : t_prefill_) += seconds_since(t0);
}

void Context::forward_batch(const int32_t *tokens, int n, int pos0, bool want_logits) {
    const Model &M = model_;
    const HParams &hp = M.hp;
    Scratch &S = *scratch_;
    ThreadPool &pool = *pool_;
    const int E = hp.n_embd, D = hp.head_dim, H = hp.n_head, Hkv = hp.n_head_kv, F = hp.n_ff;
    const int group = H / Hkv;
    const size_t nE = size_t(n) * E;
    S.x.resize(nE);
    S.h.resize(nE);
    S.tmp.resize(nE);
    S.q.resize(size_t(n) * H * D);
    S.att.resize(size_t(n) * H * D);
    S.k.resize(size_t(n) * Hkv * D);
    S.v.resize(size_t(n) * Hkv * D);
    S.gate.resize(size_t(n) * F);
    S.up.resize(size_t(n) * F);
    S.rope_cos.resize(size_t(n) * hp.n_rot / 2);
    S.rope_sin.resize(size_t(n) * hp.n_rot / 2);

    // Embeddings.
    const float emb_scale = hp.embed_scale ? std::sqrt(float(E)) : 1.0f;
    pool.parallel_for(n, 1, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; t++) {
            float *xt = S.x.data() + size_t(t) * E;
            get_row(M.tok_embd, tokens[t], xt);
            if (emb_scale != 1.0f)
                for (int i = 0; i < E; i++) xt[i] *= emb_scale;
        }
    });

    auto mm = [&](const Tensor &W, const float *X, int ldx, float *Y, int ldy) {
        matmul(W, X, ldx, n, Y, ldy, pool, S.act);
    };
    auto add_bias = [&](float *Y, int ld, const Tensor &bias) {
        if (!bias) return;
        const float *bv = static_cast<const float *>(bias.data);
        for (int t = 0; t < n; t++) add_inplace(Y + size_t(t) * ld, bv, int(bias.ne0));
    };
    auto norm_rows = [&](const float *X, const Tensor &w, float *Y, int width, int n_rows) {
        const float *wv = static_cast<const float *>(w.data);
        for (int r = 0; r < n_rows; r++) rms_norm(X + size_t(r) * width, wv, Y + size_t(r) * width, width, hp.rms_eps);
    };

    for (int il = 0; il < hp.n_layer; il++) {
        if (cancel_.load(std::memory_order_relaxed)) fail(TACTIC_ERR_CANCELLED, "evaluation cancelled");
        const LayerWeights &L = M.layers[size_t(il)];
        const bool swa = !hp.is_global(il);

        // Attention block.
        norm_rows(S.x.data(), L.attn_norm, S.h.data(), E, n);
        mm(L.wq, S.h.data(), E, S.q.data(), H * D);
        mm(L.wk, S.h.data(), E, S.k.data(), Hkv * D);
        mm(L.wv, S.h.data(), E, S.v.data(), Hkv * D);
        add_bias(S.q.data(), H * D, L.bq);
        add_bias(S.k.data(), Hkv * D, L.bk);
        add_bias(S.v.data(), Hkv * D, L.bv);
        if (hp.qk_norm) {
            norm_rows(S.q.data(), L.q_norm, S.q.data(), D, n * H);
            norm_rows(S.k.data(), L.k_norm, S.k.data(), D, n * Hkv);
        }
        RopeConfig rc;
        rc.type = hp.rope_type;
        rc.n_rot = hp.n_rot;
        rc.base = swa && hp.arch == "gemma3" ? hp.rope_base_swa : hp.rope_base;
        rc.freq_scale = swa ? 1.0f : hp.rope_freq_scale;
        rc.freq_factors = M.rope_freqs ? static_cast<const float *>(M.rope_freqs.data) : nullptr;
        rc.yarn = hp.rope_yarn && !swa;
        rc.attn_factor = rc.yarn ? hp.yarn_attn_factor : 1.0f;
        rc.yarn_orig_ctx = hp.yarn_orig_ctx;
        const int half = hp.n_rot / 2;
        for (int t = 0; t < n; t++) {
            float *cs = S.rope_cos.data() + size_t(t) * half, *sn = S.rope_sin.data() + size_t(t) * half;
            rope_cos_sin(rc, pos0 + t, cs, sn);
            for (int h = 0; h < H; h++) {
                float *qh = S.q.data() + (size_t(t) * H + h) * D;
                rope_apply(rc, qh, cs, sn);
                // q is rounded to f16 as llama.cpp's f16 K.Q product does (it settles
                // near-ties the way llama.cpp does; keys are f16 in the cache anyway).
                for (int d = 0; d < D; d++) qh[d] = f16_to_f32(f32_to_f16(qh[d] * hp.attn_scale));
            }
            for (int h = 0; h < Hkv; h++) {
                float *kh = S.k.data() + (size_t(t) * Hkv + h) * D;
                rope_apply(rc, kh, cs, sn);
                const float *vh = S.v.data() + (size_t(t) * Hkv + h) * D;
                uint16_t *kc = kv_.k_at(il, h, pos0 + t), *vc = kv_.v_at(il, h, pos0 + t);
                for (int d = 0; d < D; d++) {
                    kc[d] = f32_to_f16(kh[d]);
                    vc[d] = f32_to_f16(vh[d]);
                }
            }
        }

        const auto ta = Clock::now();
        if (n == 1) {
            // Decode: one token; split the keys across threads (or let Tactic choose them).
            const int pos = pos0, lo = swa && hp.sliding_window > 0 ? std::max(0, pos - hp.sliding_window + 1) : 0;
            if (!swa && use_tactic(pos + 1)) {
                tactic_->decode(il, S.q.data(), kv_.k_at(il, 0, 0), kv_.v_at(il, 0, 0), pos + 1, S.att.data(), pool);
            } else {
                for (int g = 0; g < Hkv; g++)
                    attention_split(S.q.data() + size_t(g) * group * D, group, D, kv_.k_at(il, g, 0),
                                    kv_.v_at(il, g, 0), lo, pos + 1, S.att.data() + size_t(g) * group * D, pool);
            }
            if (!swa) t_decode_attn_ += seconds_since(ta);
        } else {
            // Prefill: causal (and windowed) attention, one (token, KV group) per task.
            pool.parallel_for(int64_t(n) * Hkv, 1, [&](int64_t b, int64_t e) {
                thread_local std::vector<float> scratch;
                thread_local SoftmaxPartial part;
                for (int64_t i = b; i < e; i++) {
                    const int t = int(i / Hkv), g = int(i % Hkv), pos = pos0 + t;
                    const int lo = swa && hp.sliding_window > 0 ? std::max(0, pos - hp.sliding_window + 1) : 0;
                    part.reset(group, D);
                    const float *qg = S.q.data() + (size_t(t) * H + size_t(g) * group) * D;
                    attend_rows(qg, group, D, kv_.k_at(il, g, 0), kv_.v_at(il, g, 0), nullptr, lo, pos + 1, part,
                                scratch);
                    part.finish(S.att.data() + (size_t(t) * H + size_t(g) * group) * D, group, D);
                }
            });
        }

        mm(L.wo, S.att.data(), H * D, S.tmp.data(), E);
        add_bias(S.tmp.data(), E, L.bo);
        if (L.post_attn_norm) norm_rows(S.tmp.data(), L.post_attn_norm, S.tmp.data(), E, n);
        add_inplace(S.x.data(), S.tmp.data(), int(nE));

        // Feed-forward block.
        norm_rows(S.x.data(), L.ffn_norm, S.h.data(), E, n);
        mm(L.ffn_gate, S.h.data(), E, S.gate.data(), F);
        mm(L.ffn_up, S.h.data(), E, S.up.data(), F);
        pool.parallel_for(n, 1, [&](int64_t b, int64_t e) {
            for (int64_t t = b; t < e; t++)
                gated_activation(S.gate.data() + size_t(t) * F, S.up.data() + size_t(t) * F, F, hp.act);
        });
        mm(L.ffn_down, S.gate.data(), F, S.tmp.data(), E);
        if (L.post_ffn_norm) norm_rows(S.tmp.data(), L.post_ffn_norm, S.tmp.data(), E, n);
        add_inplace(S.x.data(), S.tmp.data(), int(nE));
    }

    if (!want_logits) return;
    // Output: only the rows whose logits are kept.
    const bool all = logits_.size() > size_t(hp.n_vocab);
    const int first = all ? 0 : n - 1, n_out = all ? n : 1;
    norm_rows(S.x.data() + size_t(first) * E, M.output_norm, S.h.data(), E, n_out);
    float *dst = logits_.data() + size_t(n_logit_rows_) * size_t(hp.n_vocab);
    matmul(M.output, S.h.data(), E, n_out, dst, hp.n_vocab, pool, S.act);
    if (hp.final_logit_softcap > 0) softcap(dst, n_out * hp.n_vocab, hp.final_logit_softcap);
    n_logit_rows_ += n_out;
}

}  // namespace tactic
