// The CPU backend: the transformer pass's operations on host buffers with the thread
// pool (the code forward.cpp ran inline before the backend seam; the results are the
// same bytes).
#include <chrono>
#include <cmath>
#include <vector>

#include "backend.h"
#include "common.h"
#include "cpu/attention.h"
#include "cpu/attention_segments.h"
#include "cpu/matmul.h"
#include "kv_cache.h"
#include "tactic/tactic_attention.h"
#include "threadpool.h"

namespace tactic {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

class CpuBackend final : public Backend {
public:
    explicit CpuBackend(const CpuBackendRefs &r) : r_(r) {}

    bool begin(const int32_t *tokens, int n, int pos0, float *) override {
        const HParams &hp = r_.model.hp;
        const int E = hp.n_embd, D = hp.head_dim, H = hp.n_head, Hkv = hp.n_head_kv, F = hp.n_ff;
        tokens_ = tokens;
        n_ = n;
        pos0_ = pos0;
        const size_t nE = size_t(n) * E;
        x_.resize(nE);
        h_.resize(nE);
        tmp_.resize(nE);
        q_.resize(size_t(n) * H * D);
        att_.resize(size_t(n) * H * D);
        k_.resize(size_t(n) * Hkv * D);
        v_.resize(size_t(n) * Hkv * D);
        gate_.resize(size_t(n) * F);
        up_.resize(size_t(n) * F);
        rope_cos_.resize(size_t(n) * hp.n_rot / 2);
        rope_sin_.resize(size_t(n) * hp.n_rot / 2);
        return true;
    }

    void embed(const Tensor &tok_embd, float scale) override {
        const int E = r_.model.hp.n_embd;
        r_.pool.parallel_for(n_, 1, [&](int64_t b, int64_t e) {
            for (int64_t t = b; t < e; t++) {
                float *xt = x_.data() + size_t(t) * E;
                get_row(tok_embd, tokens_[t], xt);
                if (scale != 1.0f)
                    for (int i = 0; i < E; i++) xt[i] *= scale;
            }
        });
    }

    void rms_norm(Buf src, const Tensor &w, Buf dst, int width, int rows) override {
        const float *X = buf(src), *wv = static_cast<const float *>(w.data);
        float *Y = buf(dst);
        r_.pool.parallel_for(rows, std::max(1, 4096 / width), [&](int64_t b, int64_t e) {
            for (int64_t r = b; r < e; r++)
                tactic::rms_norm(X + size_t(r) * width, wv, Y + size_t(r) * width, width, r_.model.hp.rms_eps);
        });
    }

    void matmul(const Tensor &W, Buf src, int ldx, Buf dst, int ldy) override {
        tactic::matmul(W, buf(src), ldx, n_, buf(dst), ldy, r_.pool, act_);
    }

    void add_bias(Buf dst, int ld, const Tensor &bias) override {
        if (!bias) return;
        const float *bv = static_cast<const float *>(bias.data);
        float *Y = buf(dst);
        for (int t = 0; t < n_; t++) add_inplace(Y + size_t(t) * ld, bv, int(bias.ne0));
    }

    void rope_store_kv(int il, const RopeConfig &rc, float q_scale) override {
        const HParams &hp = r_.model.hp;
        const int D = hp.head_dim, H = hp.n_head, Hkv = hp.n_head_kv, half = hp.n_rot / 2;
        // Tokens are independent here (each writes its own cache rows): split them.
        r_.pool.parallel_for(n_, 16, [&](int64_t tb, int64_t te) {
            for (int t = int(tb); t < int(te); t++) {
                float *cs = rope_cos_.data() + size_t(t) * half, *sn = rope_sin_.data() + size_t(t) * half;
                rope_cos_sin(rc, pos0_ + t, cs, sn);
                for (int h = 0; h < H; h++) {
                    float *qh = q_.data() + (size_t(t) * H + h) * D;
                    rope_apply(rc, qh, cs, sn);
                    // q is rounded to f16 as llama.cpp's f16 K.Q product does (it settles
                    // near-ties the way llama.cpp does; keys are f16 in the cache anyway).
                    round_to_f16(qh, D, q_scale, nullptr);
                }
                for (int h = 0; h < Hkv; h++) {
                    float *kh = k_.data() + (size_t(t) * Hkv + h) * D;
                    rope_apply(rc, kh, cs, sn);
                    const float *vh = v_.data() + (size_t(t) * Hkv + h) * D;
                    store_f16(kh, D, r_.kv.k_at(il, h, pos0_ + t));
                    store_f16(vh, D, r_.kv.v_at(il, h, pos0_ + t));
                }
            }
        });
    }

    void attention(int il, bool swa, int window) override {
        const HParams &hp = r_.model.hp;
        const int D = hp.head_dim, H = hp.n_head, Hkv = hp.n_head_kv, group = H / Hkv;
        KVCache &kv = r_.kv;
        ThreadPool &pool = r_.pool;
        const auto ta = Clock::now();
        if (n_ == 1) {
            // Decode: one token; split the keys across threads (or let Tactic choose them).
            const int pos = pos0_, lo = window > 0 ? std::max(0, pos - window + 1) : 0;
            if (!swa && use_tactic(pos + 1)) {
                r_.tactic->decode(il, q_.data(), kv.k_at(il, 0, 0), kv.v_at(il, 0, 0), pos + 1, att_.data(), pool);
            } else {
                int seg[4];  // a sliding-window ring may hold the window in two ranges
                const int ns = kv.slot_ranges(il, lo, pos + 1, seg);
                for (int g = 0; g < Hkv; g++)
                    attention_segments(q_.data() + size_t(g) * group * D, group, D, kv.k_at(il, g, 0),
                                       kv.v_at(il, g, 0), seg, ns, lo, att_.data() + size_t(g) * group * D, pool);
            }
            if (!swa) r_.t_decode_attn += seconds_since(ta);
        } else {
            // Prefill: causal (and windowed) attention, a block of query tokens of one KV
            // group per task.
            const int bt = query_block_tokens(group), n_blk = (n_ + bt - 1) / bt;
            pool.parallel_for(int64_t(n_blk) * Hkv, 1, [&](int64_t b, int64_t e) {
                std::vector<int> lo(static_cast<size_t>(bt)), hi(static_cast<size_t>(bt));
                for (int64_t i = b; i < e; i++) {
                    const int t0 = int(i / Hkv) * bt, g = int(i % Hkv), nt = std::min(bt, n_ - t0);
                    for (int k = 0; k < nt; k++) {
                        const int pos = pos0_ + t0 + k;
                        lo[size_t(k)] = window > 0 ? std::max(0, pos - window + 1) : 0;
                        hi[size_t(k)] = pos + 1;
                    }
                    const size_t off = (size_t(t0) * H + size_t(g) * group) * D;
                    // The block's keys, positions lo[0] .. hi[nt-1] (a sliding-window ring
                    // may hold them in two slot ranges): all its tokens together.
                    int seg[4];
                    const int ns = kv.slot_ranges(il, lo[0], hi[size_t(nt - 1)], seg);
                    thread_local std::vector<int32_t> rows;
                    const KeyMap map = segments_map(seg, ns, lo[0], rows);
                    attend_query_block(q_.data() + off, int64_t(H) * D, nt, group, D, kv.k_at(il, g, 0),
                                       kv.v_at(il, g, 0), map, lo.data(), hi.data(), att_.data() + off,
                                       int64_t(H) * D);
                }
            });
        }
    }

    void add(Buf dst, Buf src, int width) override { add_inplace(buf(dst), buf(src), n_ * width); }

    void gated_activation(Activation act) override {
        const int F = r_.model.hp.n_ff;
        r_.pool.parallel_for(n_, 1, [&](int64_t b, int64_t e) {
            for (int64_t t = b; t < e; t++) tactic::gated_activation(gate_.data() + size_t(t) * F, up_.data() + size_t(t) * F, F, act);
        });
    }

    void output(const Tensor &norm, float eps, const Tensor &W, float cap, int first, int n_out, float *dst) override {
        const int E = r_.model.hp.n_embd;
        const float *wv = static_cast<const float *>(norm.data);
        for (int r = 0; r < n_out; r++)
            tactic::rms_norm(x_.data() + size_t(first + r) * E, wv, h_.data() + size_t(r) * E, E, eps);
        tactic::matmul(W, h_.data(), E, n_out, dst, W.ne1, r_.pool, act_);
        if (cap > 0) softcap(dst, int(n_out * W.ne1), cap);
    }

    void end() override {}
    float *hidden_in() override { return x_.data(); }
    const float *hidden_out() override { return x_.data(); }

private:
    bool use_tactic(int n_tokens) const {
        if (!r_.tactic) return false;
        if (r_.params.attention == TACTIC_ATTN_TACTIC) return true;
        return n_tokens >= r_.params.tactic_min_ctx;
    }
    float *buf(Buf b) {
        switch (b) {
            case Buf::X: return x_.data();
            case Buf::H: return h_.data();
            case Buf::Q: return q_.data();
            case Buf::K: return k_.data();
            case Buf::V: return v_.data();
            case Buf::Att: return att_.data();
            case Buf::Tmp: return tmp_.data();
            case Buf::Gate: return gate_.data();
            case Buf::Up: return up_.data();
        }
        return nullptr;
    }

    CpuBackendRefs r_;
    const int32_t *tokens_ = nullptr;
    int n_ = 0, pos0_ = 0;
    std::vector<float> x_, h_, q_, k_, v_, att_, tmp_, gate_, up_, rope_cos_, rope_sin_;
    std::vector<uint8_t> act_;  // quantized activations for matmul
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const CpuBackendRefs &refs) { return std::make_unique<CpuBackend>(refs); }

}  // namespace tactic
