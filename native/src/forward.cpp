// The transformer pass. One function serves every architecture: what differs (norms,
// biases, QK-norm, RoPE style, activation, sliding windows) is data in HParams and in
// which tensors the model has; where it runs (CPU or CUDA) is the Backend's business.
#include "forward.h"

#include <chrono>
#include <cmath>

#include "backend.h"
#include "common.h"
#include "resources.h"
#include "tactic/tactic_attention.h"

namespace tactic {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
}  // namespace

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
    TACTIC_CHECK(p.device >= TACTIC_DEVICE_AUTO && p.device <= TACTIC_DEVICE_CUDA, TACTIC_ERR_INVALID_ARGUMENT,
                 "device must be 0 (auto), 1 (cpu) or 2 (cuda)");
    TACTIC_CHECK(p.n_gpu_layers >= -1, TACTIC_ERR_INVALID_ARGUMENT,
                 "n_gpu_layers must be -1 (all), 0 (CPU only) or a layer count, got " + std::to_string(p.n_gpu_layers));
    device_ = resolve_device(p.device);
    // n_gpu_layers (CUDA): the first n layers on the GPU, the rest on the CPU (backend_split.cpp).
    const int n_gpu = p.n_gpu_layers < 0 || p.n_gpu_layers >= hp.n_layer ? hp.n_layer : p.n_gpu_layers;
    if (device_ == TACTIC_DEVICE_CUDA && n_gpu == 0) device_ = TACTIC_DEVICE_CPU;
    const bool split = device_ == TACTIC_DEVICE_CUDA && n_gpu < hp.n_layer;
    n_gpu_ = device_ == TACTIC_DEVICE_CUDA ? n_gpu : 0;
    if (device_ == TACTIC_DEVICE_CUDA && !split) {
        // Everything lives on the GPU, Tactic's clusters and selection too
        // (cuda/tactic_gpu_layers.cuh; the whole decode step stays one CUDA graph).
        backend_ = make_cuda_backend(model, n_ctx_, n_batch_, &params_);
        return;
    }
    // Split: the GPU part first (its memory check may refuse the context before the CPU's work).
    std::unique_ptr<Backend> gpu = split ? make_cuda_backend(model, n_ctx_, n_batch_, &params_, n_gpu) : nullptr;
    if (split) {  // the CPU layers' K/V stay in host memory
        std::vector<int> slots = KVCache::layer_slots(hp, n_ctx_, n_batch_, p.swa_full != 0);
        slots.erase(slots.begin(), slots.begin() + n_gpu);
        const uint64_t kv = KVCache::bytes_for(hp, slots);
        check_fits(kv, "the CPU layers (" + std::to_string(hp.n_layer - n_gpu) + ") of a context of " +
                           std::to_string(n_ctx_) + " tokens (KV cache " + format_bytes(kv) + ")");
    }
    const int n_threads = p.n_threads > 0 ? p.n_threads : ThreadPool::hardware_threads();
    kv_.allocate(hp, n_ctx_, n_batch_, p.swa_full != 0);
    pool_ = std::make_unique<ThreadPool>(n_threads);
    // A split context attends as CUDA does: AUTO is full attention, TACTIC runs Tactic on
    // every global layer, on the device that holds it.
    if (split ? p.attention == TACTIC_ATTN_TACTIC : p.attention != TACTIC_ATTN_FULL) {
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
    model_.pack_for_cpu();
    backend_ = make_cpu_backend(CpuBackendRefs{model_, *pool_, kv_, tactic_.get(), params_, t_decode_attn_});
    if (split) backend_ = make_split_backend(std::move(gpu), std::move(backend_), n_gpu, hp.n_embd);
}

Context::~Context() = default;

const float *Context::logits(int row) const {
    if (row < 0) row += n_logit_rows_;
    if (row < 0 || row >= n_logit_rows_) return nullptr;
    return logits_.data() + size_t(row) * size_t(model_.hp.n_vocab);
}

void Context::truncate(int n_keep) {
    sync();
    TACTIC_CHECK(n_keep >= 0 && n_keep <= n_past_, TACTIC_ERR_INVALID_ARGUMENT,
                 "truncate: n_keep " + std::to_string(n_keep) + " is outside [0, " + std::to_string(n_past_) + "]");
    n_past_ = kv_.truncate(n_keep);  // less when sliding-window rings cannot go back that far
    if (tactic_) tactic_->truncate(n_past_);
    if (backend_) backend_->truncate(n_past_);
}

void Context::timings(double *out, int n, bool reset) {
    sync();
    const double clustering = (tactic_ ? tactic_->clustering_seconds() : 0.0) + (backend_ ? backend_->clustering_seconds() : 0.0);
    const double vals[6] = {t_prefill_, clustering, t_decode_, t_decode_attn_,
                            tactic_ ? tactic_->selection_seconds() : 0.0, tactic_ ? tactic_->attended_share() : -1.0};
    for (int i = 0; i < n && i < 6; i++) out[i] = vals[i];
    if (reset) {
        t_prefill_ = t_decode_ = t_decode_attn_ = 0;
        if (tactic_) tactic_->reset_timings();
        if (backend_) backend_->reset_timings();
    }
}

void Context::check_eval(const int32_t *tokens, int n) const {
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
}

void Context::eval(const int32_t *tokens, int n, bool logits_all) {
    sync();
    check_eval(tokens, n);
    cancel_.store(false);
    n_logit_rows_ = 0;
    const size_t rows = logits_all ? size_t(n) : 1;
    logits_.resize(rows * size_t(model_.hp.n_vocab));
    const auto t0 = Clock::now();
    for (int b = 0; b < n; b += n_batch_) {
        const int nb = std::min(n_batch_, n - b);
        kv_.begin_write(n_past_, nb);
        forward_batch(tokens + b, nb, n_past_, logits_all || b + nb == n);
        n_past_ += nb;
        n_evaluated_ += nb;
    }
    (n == 1 ? t_decode_ : t_prefill_) += seconds_since(t0);
}

void Context::eval_async(int32_t token) {
    sync();
    check_eval(&token, 1);
    cancel_.store(false);
    n_logit_rows_ = 0;
    logits_.resize(size_t(model_.hp.n_vocab));
    t_pending_ = Clock::now();
    kv_.begin_write(n_past_, 1);
    pending_ = forward_batch(&token, 1, n_past_, true, true);
    n_past_ += 1;
    n_evaluated_ += 1;
    if (!pending_) t_decode_ += seconds_since(t_pending_);
}

void Context::sync() {
    if (!pending_) return;
    pending_ = false;
    try {
        backend_->wait();
    } catch (...) {
        n_past_ -= 1;  // the step did not complete: as if it had not been asked for
        n_evaluated_ -= 1;
        throw;
    }
    n_logit_rows_ += 1;
    t_decode_ += seconds_since(t_pending_);
}

bool Context::forward_batch(const int32_t *tokens, int n, int pos0, bool want_logits, bool async) {
    const Model &M = model_;
    const HParams &hp = M.hp;
    Backend &be = *backend_;
    const int E = hp.n_embd, D = hp.head_dim, H = hp.n_head, Hkv = hp.n_head_kv, F = hp.n_ff;
    // Output: only the rows whose logits are kept.
    const bool all = logits_.size() > size_t(hp.n_vocab);
    const int first = all ? 0 : n - 1, n_out = all ? n : 1;
    float *dst = logits_.data() + size_t(n_logit_rows_) * size_t(hp.n_vocab);

    if (be.begin(tokens, n, pos0, want_logits ? dst : nullptr)) {
        be.embed(M.tok_embd, hp.embed_scale ? std::sqrt(float(E)) : 1.0f);
        for (int il = 0; il < hp.n_layer; il++) {
            if (cancel_.load(std::memory_order_relaxed) && be.cancelled_between_layers())
                fail(TACTIC_ERR_CANCELLED, "evaluation cancelled");
            be.layer(il);
            const LayerWeights &L = M.layers[size_t(il)];
            const bool swa = !hp.is_global(il);

            // Attention block.
            be.rms_norm(Buf::X, L.attn_norm, Buf::H, E, n);
            be.matmul(L.wq, Buf::H, E, Buf::Q, H * D);
            be.matmul(L.wk, Buf::H, E, Buf::K, Hkv * D);
            be.matmul(L.wv, Buf::H, E, Buf::V, Hkv * D);
            be.add_bias(Buf::Q, H * D, L.bq);
            be.add_bias(Buf::K, Hkv * D, L.bk);
            be.add_bias(Buf::V, Hkv * D, L.bv);
            if (hp.qk_norm) {
                be.rms_norm(Buf::Q, L.q_norm, Buf::Q, D, n * H);
                be.rms_norm(Buf::K, L.k_norm, Buf::K, D, n * Hkv);
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
            be.rope_store_kv(il, rc, hp.attn_scale);
            be.attention(il, swa, swa ? hp.sliding_window : 0);

            be.matmul(L.wo, Buf::Att, H * D, Buf::Tmp, E);
            be.add_bias(Buf::Tmp, E, L.bo);
            if (L.post_attn_norm) be.rms_norm(Buf::Tmp, L.post_attn_norm, Buf::Tmp, E, n);
            be.add(Buf::X, Buf::Tmp, E);

            // Feed-forward block.
            be.rms_norm(Buf::X, L.ffn_norm, Buf::H, E, n);
            be.matmul(L.ffn_gate, Buf::H, E, Buf::Gate, F);
            be.matmul(L.ffn_up, Buf::H, E, Buf::Up, F);
            be.gated_activation(hp.act);
            be.matmul(L.ffn_down, Buf::Gate, F, Buf::Tmp, E);
            if (L.post_ffn_norm) be.rms_norm(Buf::Tmp, L.post_ffn_norm, Buf::Tmp, E, n);
            be.add(Buf::X, Buf::Tmp, E);
        }
        if (want_logits) be.output(M.output_norm, hp.rms_eps, M.output, hp.final_logit_softcap, first, n_out, dst);
    }
    if (async && be.end_async()) return true;  // logits rows counted by sync()
    if (!async) be.end();
    if (want_logits) n_logit_rows_ += n_out;
    return false;
}

}  // namespace tactic
