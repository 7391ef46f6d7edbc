// The CUDA backend of the transformer pass (backend.h). Everything stays on the GPU:
// the weights, uploaded once as stored (quantized); the f16 KV cache
// [layer][kv_head][n_ctx][head_dim]; the activations in a workspace sized for n_batch
// tokens. Only token ids go in and logits come out.
//
// Decode (one token) is captured once as a CUDA graph and replayed: the kernels read
// the position from device memory, so one graph serves every length of a bucket (the
// bucket, a power of two, only fixes how many ways attention splits the keys).
// Prefill multiplies by f16 copies of the weights, dequantized a matrix at a time into
// one scratch buffer, with cuBLAS on tensor cores (dlopen'ed: cublas_loader.cu).
#include <cstring>
#include <map>
#include <unordered_map>
#include <vector>

#include "backend.h"
#include "cuda_ops.cuh"
#include "cuda_util.cuh"
#include "resources.h"
#include "tactic_gpu_layers.cuh"

namespace tactic {

namespace {

using namespace cuda;

class CudaBackend final : public Backend {
public:
    CudaBackend(const Model &model, int n_ctx, int n_batch, const tactic_context_params *cp, int n_layers)
        : M_(model), hp_(model.hp), n_ctx_(n_ctx), nb_(n_batch),
          n_dev_layers_(n_layers < 0 || n_layers > model.hp.n_layer ? model.hp.n_layer : n_layers),
          layers_only_(n_dev_layers_ < model.hp.n_layer) {
        require_device();
        const int D = hp_.head_dim;
        TACTIC_CHECK(D == 64 || D == 128 || D == 256, TACTIC_ERR_UNSUPPORTED,
                     "device=cuda: head_dim " + std::to_string(D) + " is not supported (64, 128 or 256)");
        collect_tensors();
        const int E = hp_.n_embd, H = hp_.n_head, Hkv = hp_.n_head_kv, F = hp_.n_ff;
        uint64_t weights = 0;
        for (const Tensor *t : tensors_) weights += tensor_bytes(*t);
        kv_layer_ = size_t(Hkv) * size_t(n_ctx_) * size_t(D);
        const uint64_t kv = 2ull * n_dev_layers_ * kv_layer_ * sizeof(__half);  // the device layers only
        // the most splits any decode bucket (a power of two, below 2 n_ctx) asks for
        max_splits_ = 1;
        for (int64_t b = 256; b < 2 * int64_t(n_ctx_); b *= 2)
            max_splits_ = std::max(max_splits_, decode_attention_splits(H, Hkv, D, b));
        const size_t widest = std::max<size_t>({size_t(E), size_t(H) * D, size_t(F)});
        size_t w16 = 0;  // the largest layer matrix, as f16
        for (int il = 0; il < n_dev_layers_; il++) {
            const LayerWeights &L = M_.layers[size_t(il)];
            for (const Tensor *t : {&L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_gate, &L.ffn_up, &L.ffn_down})
                w16 = std::max(w16, size_t(t->ne0) * size_t(t->ne1));
        }
        const uint64_t act = sizeof(float) * (uint64_t(nb_) * (3ull * E + 2ull * H * D + 2ull * Hkv * D + 2ull * F) +
                                              uint64_t(hp_.n_vocab) + 2ull * max_splits_ * H * (D + 2)) +
                             sizeof(__half) * (uint64_t(nb_) * widest + (nb_ > 1 ? w16 : 0)) + 8ull * nb_;
        // attention=tactic: cluster pages of the global layers (tactic_gpu_layers.cuh). AUTO stays
        // full on this device: the pages double the global layers' KV memory, so it is asked for.
        TacticGpuParams tp;
        std::vector<uint8_t> is_global(size_t(hp_.n_layer));
        int n_global = 0;
        for (int il = 0; il < n_dev_layers_; il++) n_global += (is_global[size_t(il)] = hp_.is_global(il) ? 1 : 0);
        const bool use_tactic = cp && cp->attention == TACTIC_ATTN_TACTIC && n_global > 0;
        if (use_tactic) {
            tp.n_sink = cp->n_sink;
            tp.n_recent = cp->n_recent;
            tp.cluster_size = cp->cluster_size;
            tp.block_size = cp->tactic_block_size;
            tp.force_fraction = cp->tactic_force_fraction;
            tp.p = cp->tactic_p;
            tp.seed = cp->seed;
        }
        const uint64_t tactic_b = use_tactic ? TacticGpu::bytes(tp, n_global, H, Hkv, D, n_ctx_) : 0;
        size_t free_b = 0, total_b = 0;
        TACTIC_CU(cudaMemGetInfo(&free_b, &total_b));
        const uint64_t need = weights + kv + act + tactic_b, reserve = uint64_t(256) << 20;  // CUDA/cuBLAS own needs
        if (need + reserve > free_b)
            fail(TACTIC_ERR_OUT_OF_MEMORY,
                 "device=cuda: " +
                     (layers_only_ ? "the first " + std::to_string(n_dev_layers_) + " of " + std::to_string(hp_.n_layer) +
                                         " layers (n_gpu_layers)"
                                   : std::string("the model")) +
                     " and a context of " + std::to_string(n_ctx_) + " tokens need " +
                     format_bytes(need) + " of GPU memory (weights " + format_bytes(weights) + " + KV cache " +
                     format_bytes(kv) + " + buffers " + format_bytes(act) +
                     (tactic_b ? " + Tactic's cluster pages " + format_bytes(tactic_b) : std::string()) + "), but only " + format_bytes(free_b) +
                     " of " + format_bytes(total_b) + " is free");

        TACTIC_CU(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        for (const Tensor *t : tensors_) {
            if (dev_.count(t->data)) continue;  // tied output == token embeddings
            void *p = alloc(tensor_bytes(*t));
            TACTIC_CU(cudaMemcpy(p, t->data, tensor_bytes(*t), cudaMemcpyHostToDevice));
            dev_[t->data] = p;
        }
        k_cache_ = static_cast<__half *>(alloc(kv / 2));
        v_cache_ = static_cast<__half *>(alloc(kv / 2));
        auto fbuf = [&](size_t n) { return static_cast<float *>(alloc(n * sizeof(float))); };
        x_ = fbuf(size_t(nb_) * E);
        h_ = fbuf(size_t(nb_) * E);
        tmp_ = fbuf(size_t(nb_) * E);
        q_ = fbuf(size_t(nb_) * H * D);
        att_ = fbuf(size_t(nb_) * H * D);
        k_ = fbuf(size_t(nb_) * Hkv * D);
        v_ = fbuf(size_t(nb_) * Hkv * D);
        gate_ = fbuf(size_t(nb_) * F);
        up_ = fbuf(size_t(nb_) * F);
        logits1_ = fbuf(size_t(hp_.n_vocab));
        part_acc_ = fbuf(size_t(max_splits_) * H * D);
        part_ml_ = fbuf(size_t(max_splits_) * H * 2);
        attn_done_ = static_cast<int32_t *>(alloc(sizeof(int32_t) * size_t(H)));
        TACTIC_CU(cudaMemset(attn_done_, 0, sizeof(int32_t) * size_t(H)));
        x16_ = static_cast<__half *>(alloc(sizeof(__half) * size_t(nb_) * widest));
        if (nb_ > 1) {
            w16_ = static_cast<__half *>(alloc(sizeof(__half) * w16));
            w16_cap_ = w16;
        }
        xq_.q = static_cast<int8_t *>(alloc(widest));
        xq_.d = static_cast<float *>(alloc(sizeof(float) * (widest / 32 + 1)));
        xq_.s = static_cast<float *>(alloc(sizeof(float) * (widest / 16 + 1)));
        d_tokens_ = static_cast<int32_t *>(alloc(sizeof(int32_t) * size_t(nb_)));
        d_pos_ = static_cast<int32_t *>(alloc(sizeof(int32_t) * size_t(nb_)));
        TACTIC_CU(cudaHostAlloc(reinterpret_cast<void **>(&h_in_), 2 * sizeof(int32_t), cudaHostAllocDefault));
        TACTIC_CU(cudaHostAlloc(reinterpret_cast<void **>(&h_logits_), sizeof(float) * size_t(hp_.n_vocab),
                                cudaHostAllocDefault));
        if (layers_only_)  // X in and out of the split pass (pinned: the decode graph copies them)
            for (float **h : {&h_xin_, &h_xout_})
                TACTIC_CU(cudaHostAlloc(reinterpret_cast<void **>(h), sizeof(float) * size_t(nb_) * E, cudaHostAllocDefault));
        TACTIC_CU(cudaMemset(k_cache_, 0, kv / 2));
        TACTIC_CU(cudaMemset(v_cache_, 0, kv / 2));
        TACTIC_CU(cudaDeviceSynchronize());
        if (use_tactic) tactic_ = std::make_unique<TacticGpu>(tp, is_global, H, Hkv, D, n_ctx_, k_cache_, v_cache_, kv_layer_);
        matvec_q8_prepare();  // the v4 grids' occupancy, asked before any capture
    }

    ~CudaBackend() override {
        abort_capture();
        for (auto &g : graphs_) cudaGraphExecDestroy(g.second);
        if (stream_) cudaStreamSynchronize(stream_);
        for (void *p : allocs_) cudaFree(p);
        if (h_in_) cudaFreeHost(h_in_);
        if (h_logits_) cudaFreeHost(h_logits_);
        if (h_xin_) cudaFreeHost(h_xin_);
        if (h_xout_) cudaFreeHost(h_xout_);
        if (stream_) cudaStreamDestroy(stream_);
    }

    double clustering_seconds() const override { return tactic_ ? tactic_->clustering_seconds() : 0.0; }
    void reset_timings() override {
        if (tactic_) tactic_->reset_timings();
    }

    bool begin(const int32_t *tokens, int n, int pos0, float *logits) override {
        abort_capture();  // a pass that threw mid-capture leaves the stream capturing
        norm_.on = false;  // and may leave fused ops held
        mat_.n = 0;
        add_.on = false;
        attn_.on = false;
        qk_norm_ = QkNorm{};
        n_ = n;
        pos0_ = pos0;
        out_dst_ = logits;
        out_rows_ = 1;
        if (n == 1) {
            int bucket = 256;
            while (bucket < pos0 + 1) bucket *= 2;
            n_splits_ = std::min(max_splits_, decode_attention_splits(hp_.n_head, hp_.n_head_kv, hp_.head_dim, bucket));
            bucket_ = bucket;
            h_in_[0] = tokens[0];
            h_in_[1] = pos0;
            tactic_on_ = tactic_ && tactic_->prepare(pos0 + 1, stream_);  // clusters what is due
            const bool graphs = options().graphs != 0;
            if (graphs) {
                auto it = graphs_.find(graph_key());
                if (it != graphs_.end()) {
                    TACTIC_CU(cudaGraphLaunch(it->second, stream_));
                    return described_ = false;
                }
                TACTIC_CU(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
                capturing_ = true;
            }
            TACTIC_CU(cudaMemcpyAsync(d_tokens_, &h_in_[0], sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
            TACTIC_CU(cudaMemcpyAsync(d_pos_, &h_in_[1], sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
            return described_ = hidden_to_device();
        }
        tactic_on_ = false;
        pos_host_.resize(size_t(n));
        for (int t = 0; t < n; t++) pos_host_[size_t(t)] = pos0 + t;
        TACTIC_CU(cudaMemcpyAsync(d_tokens_, tokens, sizeof(int32_t) * size_t(n), cudaMemcpyHostToDevice, stream_));
        TACTIC_CU(cudaMemcpyAsync(d_pos_, pos_host_.data(), sizeof(int32_t) * size_t(n), cudaMemcpyHostToDevice, stream_));
        return described_ = hidden_to_device();
    }

    // Split pass (layers-only): X comes from the host in h_xin_ and goes back in h_xout_.
    float *hidden_in() override {
        abort_capture();  // a pass that threw may still be reading h_xin_
        TACTIC_CU(cudaStreamSynchronize(stream_));
        return h_xin_;
    }
    const float *hidden_out() override { return h_xout_; }
    void kv_rows(bool to_host, int il, int h, bool v, int first, int n, uint16_t *host) override {
        TACTIC_CHECK(il >= 0 && il < n_dev_layers_ && first >= 0 && first + n <= n_ctx_, TACTIC_ERR_INTERNAL,
                     "CUDA kv_rows: out of range");
        __half *d = (v ? v_cache_ : k_cache_) + size_t(il) * kv_layer_ + (size_t(h) * n_ctx_ + first) * hp_.head_dim;
        const size_t bytes = size_t(n) * hp_.head_dim * sizeof(__half);
        TACTIC_CU(cudaStreamSynchronize(stream_));
        TACTIC_CU(cudaMemcpy(to_host ? static_cast<void *>(host) : d, to_host ? static_cast<const void *>(d) : host, bytes,
                             to_host ? cudaMemcpyDeviceToHost : cudaMemcpyHostToDevice));
        // from pageable memory the copy may return before its DMA lands, and stream_ (non-blocking)
        // is not ordered after the legacy stream
        if (!to_host) TACTIC_CU(cudaDeviceSynchronize());
    }
    bool hidden_to_device() {
        if (layers_only_)
            TACTIC_CU(cudaMemcpyAsync(x_, h_xin_, sizeof(float) * size_t(n_) * hp_.n_embd, cudaMemcpyHostToDevice, stream_));
        return true;
    }
    void hidden_to_host() {
        if (layers_only_ && described_)  // a replayed graph holds this copy
            TACTIC_CU(cudaMemcpyAsync(h_xout_, x_, sizeof(float) * size_t(n_) * hp_.n_embd, cudaMemcpyDeviceToHost, stream_));
    }

    void embed(const Tensor &W, float scale) override {
        flush();
        writes_++;
        get_rows_dev(W.type, dev(W), W.row_bytes, W.ne0, d_tokens_, n_, scale, x_, stream_);
    }

    void rms_norm(Buf src, const Tensor &w, Buf dst, int width, int rows) override {
        if (attn_.on) flush_attention(nullptr, nullptr);  // (wo's matmul takes it in forward.cpp's order)
        if (norm_fuse_on() && src == dst && (src == Buf::Q || src == Buf::K) && width == hp_.head_dim &&
            rows == n_ * (src == Buf::Q ? hp_.n_head : hp_.n_head_kv) && width <= 256) {
            flush_add();  // QK-norm: held for rope_store_kv, which norms each head as it rotates it
            flush_norm_mat();  // (the other QK-norm stays held)
            writes_++;
            (src == Buf::Q ? qk_norm_.q : qk_norm_.k) = static_cast<const float *>(dev(w));
            return;
        }
        if (fuse_on() && rows == 1 && add_.on && buf(src) == add_.x && !norm_.on && mat_.n == 0) {
            writes_++;  // held after the held post-norm and add: one kernel (matmul, output)
            norm_ = PendingNorm{true, buf(src), static_cast<const float *>(dev(w)), width, buf(dst)};
            return;
        }
        flush();
        writes_++;
        if (fuse_on() && rows == 1) {  // held: the next matmul may quantize its output in the same kernel
            norm_ = PendingNorm{true, buf(src), static_cast<const float *>(dev(w)), width, buf(dst)};
            return;
        }
        rms_norm_dev(buf(src), static_cast<const float *>(dev(w)), rows, width, hp_.rms_eps, buf(dst), stream_);
    }

    void matmul(const Tensor &W, Buf src, int ldx, Buf dst, int ldy) override {
        TACTIC_CHECK(ldx == W.ne0 && ldy == W.ne1, TACTIC_ERR_INTERNAL, "CUDA matmul: strided rows");
        if (attn_.on) flush_attention(&W, buf(src));
        Q8Kind kind;
        if (!fuse_on() || !matvec_q8_kind(W.type, W.ne0, kind)) {
            flush();
            mat(W, buf(src), n_, buf(dst));
            return;
        }
        const float *x = buf(src);
        float *y = buf(dst);
        if (norm_.on && norm_.y == x && !(q8_src_ == x && q8_version_ == writes_ && q8_kind_ == kind)) {
            if (add_.on && add_.x == norm_.x) {
                add_norm_rms_norm_q8_dev(kind, add_.t, add_.w, hp_.rms_eps, add_.x, norm_.w, norm_.width,
                                         hp_.rms_eps, norm_.y, xq_, stream_);
                add_.on = false;
            } else {
                flush_add();
                rms_norm_q8_dev(kind, norm_.x, norm_.w, norm_.width, hp_.rms_eps, norm_.y, xq_, stream_);
            }
            norm_.on = false;
            q8_src_ = x;
            q8_version_ = writes_;
            q8_kind_ = kind;
        }
        // gate then up on the same input: one launch, with the activation (gated_activation)
        if (mat_.n == 1 && mat_.y[0] == gate_ && y == up_ && mat_.x == x && same_layout(*mat_.W[0], W)) {
            mat_.W[1] = &W;
            mat_.y[1] = y;
            mat_.n = 2;
            return;
        }
        // wq, then wk and wv of the same type and width: one launch (decode_fuse 2)
        const Tensor *W0 = mat_.W[0];
        if (mat_.n >= 1 && mat_.n < 3 && mat_.y[0] == q_ && (y == k_ || y == v_) && mat_.x == x &&
            W0->type == W.type && W0->ne0 == W.ne0 && W0->row_bytes == W.row_bytes) {
            mat_.W[mat_.n] = &W;
            mat_.y[mat_.n] = y;
            mat_.n++;
            return;
        }
        flush();
        ensure_q8(kind, x, W.ne0);
        // held: a residual add, the up matrix, or wk / wv may follow
        if (y == tmp_ || y == gate_ || (y == q_ && options().decode_fuse == 2)) {
            mat_ = PendingMat{1, {&W, nullptr, nullptr}, x, {y, nullptr, nullptr}};
            return;
        }
        matvec_q8_dev(W.type, dev(W), W.row_bytes, W.ne1, W.ne0, xq_, y, stream_);
    }

    void add_bias(Buf dst, int ld, const Tensor &bias) override {
        writes_++;
        if (!bias) return;  // nothing to do: held ops stay held
        flush();
        add_bias_dev(buf(dst), ld, static_cast<const float *>(dev(bias)), int(bias.ne0), n_, stream_);
    }

    void rope_store_kv(int il, const RopeConfig &rc, float q_scale) override {
        const QkNorm qk = qk_norm_;
        qk_norm_ = QkNorm{};
        flush();
        writes_++;
        QkvArgs a;
        a.q = q_;
        a.k = k_;
        a.v = v_;
        a.n_tokens = n_;
        a.n_head = hp_.n_head;
        a.n_head_kv = hp_.n_head_kv;
        a.head_dim = hp_.head_dim;
        a.n_ctx = n_ctx_;
        a.pos = d_pos_;
        a.q_scale = q_scale;
        a.k_cache = k_cache_ + size_t(il) * kv_layer_;
        a.v_cache = v_cache_ + size_t(il) * kv_layer_;
        a.q_norm = qk.q;
        a.k_norm = qk.k;
        a.norm_eps = hp_.rms_eps;
        RopeArgs r;
        r.neox = rc.type == RopeType::Neox;
        r.n_rot = rc.n_rot;
        r.base = rc.base;
        r.freq_scale = rc.freq_scale;
        r.attn_factor = rc.attn_factor;
        r.freq_factors = rc.freq_factors ? static_cast<const float *>(dev_ptr(rc.freq_factors)) : nullptr;
        r.yarn = rc.yarn;
        r.yarn_orig_ctx = rc.yarn_orig_ctx;
        rope_qkv_dev(a, r, stream_);
    }

    void attention(int il, bool, int window) override {
        flush();
        writes_++;
        const __half *K = k_cache_ + size_t(il) * kv_layer_, *V = v_cache_ + size_t(il) * kv_layer_;
        if (n_ == 1 && tactic_on_ && hp_.is_global(il)) {
            tactic_->step(il, q_, d_pos_, att_, stream_);
            return;
        }
        if (n_ == 1) {
            DecodeAttn a;
            a.q = q_;
            a.k = K;
            a.v = V;
            a.n_head = hp_.n_head;
            a.n_head_kv = hp_.n_head_kv;
            a.head_dim = hp_.head_dim;
            a.n_ctx = n_ctx_;
            a.d_pos = d_pos_;
            a.window = window;
            a.n_splits = n_splits_;
            a.max_len = window > 0 ? std::min<int64_t>(bucket_, window) : bucket_;
            a.part_acc = part_acc_;
            a.part_ml = part_ml_;
            a.out = att_;
            a.done = attn_done_;
            if (fuse_on()) {  // held: the wo matmul that follows may have its merge quantize att_
                attn_ = PendingAttn{true, a};
                return;
            }
            attention_decode_dev(a, stream_);
            return;
        }
        PrefillAttn a;
        a.q = q_;
        a.k = K;
        a.v = V;
        a.n_tokens = n_;
        a.n_head = hp_.n_head;
        a.n_head_kv = hp_.n_head_kv;
        a.head_dim = hp_.head_dim;
        a.n_ctx = n_ctx_;
        a.pos0 = pos0_;
        a.window = window;
        a.out = att_;
        attention_prefill_dev(a, stream_);
    }

    void add(Buf dst, Buf src, int width) override {
        if (attn_.on) flush_attention(nullptr, nullptr);  // (wo's matmul takes it in forward.cpp's order)
        writes_++;
        if (norm_fuse_on() && norm_.on && norm_.x == buf(src) && norm_.y == buf(src) && norm_.width == width &&
            mat_.n == 0 && !add_.on) {
            // a post-norm (Gemma) then this add: held, fused with the next pre-norm (matmul, output)
            add_ = PendingAdd{true, buf(src), norm_.w, buf(dst), width};
            norm_.on = false;
            return;
        }
        if (mat_.n == 1 && mat_.y[0] == buf(src) && width == mat_.W[0]->ne1) {
            // the held matvec adds its rows to dst itself (src, Tmp, is then not written)
            const Tensor &W = *mat_.W[0];
            mat_.n = 0;
            matvec_q8_fused_dev(W.type, dev(W), nullptr, W.row_bytes, W.ne1, W.ne0, xq_, MvEpilogue::Residual,
                                buf(dst), buf(dst), stream_);
            return;
        }
        flush();
        add_dev(buf(dst), buf(src), int64_t(n_) * width, stream_);
    }

    void gated_activation(Activation act) override {
        if (attn_.on) flush_attention(nullptr, nullptr);  // (wo's matmul takes it in forward.cpp's order)
        writes_++;
        if (mat_.n == 2) {  // gate and up held: act(gate) * up in their matvec (up_ is then not written)
            const Tensor &W = *mat_.W[0];
            mat_.n = 0;
            matvec_q8_fused_dev(W.type, dev(W), dev(*mat_.W[1]), W.row_bytes, W.ne1, W.ne0, xq_,
                                act == Activation::GeluTanh ? MvEpilogue::Gelu : MvEpilogue::Silu, nullptr, gate_,
                                stream_);
            return;
        }
        flush();
        gated_act_dev(gate_, up_, int64_t(n_) * hp_.n_ff, act == Activation::GeluTanh, stream_);
    }

    void output(const Tensor &norm, float eps, const Tensor &W, float cap, int first, int n_out, float *dst) override {
        flush_except_add();
        writes_++;
        const int E = hp_.n_embd;
        Q8Kind kind;
        if (fuse_on() && n_out == 1 && matvec_q8_kind(W.type, W.ne0, kind)) {  // norm + quantization in one kernel
            if (add_.on && add_.x == x_ + size_t(first) * E) {  // and the last layer's post-norm + add
                add_norm_rms_norm_q8_dev(kind, add_.t, add_.w, hp_.rms_eps, add_.x,
                                         static_cast<const float *>(dev(norm)), E, eps, h_, xq_, stream_);
                add_.on = false;
            } else {
                flush_add();
                rms_norm_q8_dev(kind, x_ + size_t(first) * E, static_cast<const float *>(dev(norm)), E, eps, h_,
                                xq_, stream_);
            }
            q8_src_ = h_;
            q8_version_ = writes_;
            q8_kind_ = kind;
        } else {
            flush_add();
            rms_norm_dev(x_ + size_t(first) * E, static_cast<const float *>(dev(norm)), n_out, E, eps, h_, stream_);
        }
        const size_t n_logits = size_t(n_out) * size_t(W.ne1);
        float *y = logits1_;
        if (n_out > 1) {
            if (logits_many_cap_ < n_logits) {
                if (logits_many_) free_one(logits_many_);
                logits_many_ = static_cast<float *>(alloc(n_logits * sizeof(float)));
                logits_many_cap_ = n_logits;
            }
            y = logits_many_;
        }
        mat(W, h_, n_out, y);
        if (cap > 0) softcap_dev(y, int64_t(n_logits), cap, stream_);
        if (n_out == 1) TACTIC_CU(cudaMemcpyAsync(h_logits_, y, n_logits * sizeof(float), cudaMemcpyDeviceToHost, stream_));
        out_rows_ = n_out;
        out_dev_ = y;
    }

    void end() override {
        flush();
        hidden_to_host();
        launch();
        wait();
    }

    bool end_async() override {
        flush();
        hidden_to_host();
        launch();
        return true;
    }

    void wait() override {
        TACTIC_CU(cudaStreamSynchronize(stream_));
        TACTIC_CU(cudaGetLastError());
        if (out_dst_) {
            const size_t n_logits = size_t(out_rows_) * size_t(hp_.n_vocab);
            if (out_rows_ > 1) TACTIC_CU(cudaMemcpy(out_dst_, out_dev_, n_logits * sizeof(float), cudaMemcpyDeviceToHost));
            else std::memcpy(out_dst_, h_logits_, n_logits * sizeof(float));
        }
    }

    // Ends a decode step's capture (and launches the new graph) without waiting.
    void launch() {
        if (capturing_) {
            cudaGraph_t g = nullptr;
            capturing_ = false;
            TACTIC_CU(cudaStreamEndCapture(stream_, &g));
            record_graph_stats(g);
            cudaGraphExec_t exec = nullptr;
            const cudaError_t e = cudaGraphInstantiate(&exec, g, 0);
            cudaGraphDestroy(g);
            TACTIC_CU(e);
            graphs_[graph_key()] = exec;
            TACTIC_CU(cudaGraphLaunch(exec, stream_));
        }
    }

    bool cancelled_between_layers() const override { return !capturing_; }

    void truncate(int n_keep) override {
        if (tactic_) tactic_->truncate(n_keep);
    }

private:
    // Decode fusion (options().decode_fuse, one token, the v4 matvec): an RMSNorm or a
    // matvec is held until the next call shows whether it can be fused into it; any other
    // call launches what is held first (flush), in the order it was asked for.
    struct PendingNorm {
        bool on = false;
        const float *x = nullptr, *w = nullptr;
        int width = 0;
        float *y = nullptr;
    };
    // A post-norm held with the residual add after it (Gemma: t = RMSNorm(t) * w; x += t),
    // fused with the next pre-norm (and its quantization) when one follows on x.
    struct PendingAdd {
        bool on = false;
        float *t = nullptr;
        const float *w = nullptr;
        float *x = nullptr;
        int width = 0;
    };
    // QK-norm weights held for rope_store_kv (null: none).
    struct QkNorm {
        const float *q = nullptr, *k = nullptr;
    };
    struct PendingMat {
        int n = 0;  // matrices held: 0, 1, 2 (gate and up on the same input) or 3 (wq, wk, wv)
        const Tensor *W[3] = {nullptr, nullptr, nullptr};
        const float *x = nullptr;
        float *y[3] = {nullptr, nullptr, nullptr};
    };
    bool fuse_on() const {
        return n_ == 1 && options().decode_fuse && options().matvec_q8 && options().matvec_q8_kernel >= 4;
    }
    bool norm_fuse_on() const { return fuse_on() && options().norm_fuse; }
    static bool same_layout(const Tensor &a, const Tensor &b) {
        return a.type == b.type && a.ne0 == b.ne0 && a.ne1 == b.ne1 && a.row_bytes == b.row_bytes;
    }
    // Launches what is held, oldest first: the post-norm + add (nothing is held before it),
    // then the rest.
    void flush() {
        flush_add();
        flush_except_add();
    }
    void flush_add() {
        if (!add_.on) return;
        add_.on = false;
        rms_norm_dev(add_.t, add_.w, 1, add_.width, hp_.rms_eps, add_.t, stream_);
        add_dev(add_.x, add_.t, add_.width, stream_);
    }
    // The held decode attention, its merge quantizing att_ for W (which reads x) where it can:
    // then ensure_q8 finds it done.
    void flush_attention(const Tensor *W, const float *x) {
        attn_.on = false;
        DecodeAttn a = attn_.a;
        Q8Kind kind;
        const bool want = options().merge_q8 && W && x == a.out && matvec_q8_kind(W->type, W->ne0, kind);
        if (want) {
            a.q8 = xq_;
            a.q8_kind = int(kind);
        }
        if (attention_decode_dev(a, stream_) && want) {
            q8_src_ = a.out;
            q8_version_ = writes_;
            q8_kind_ = kind;
        }
    }
    void flush_except_add() {
        if (attn_.on) flush_attention(nullptr, nullptr);  // (the oldest held op: nothing is held past it)
        if (qk_norm_.q || qk_norm_.k) {  // alone when held (held after a flush, taken by rope_store_kv)
            const int D = hp_.head_dim;
            if (qk_norm_.q) rms_norm_dev(q_, qk_norm_.q, int64_t(n_) * hp_.n_head, D, hp_.rms_eps, q_, stream_);
            if (qk_norm_.k) rms_norm_dev(k_, qk_norm_.k, int64_t(n_) * hp_.n_head_kv, D, hp_.rms_eps, k_, stream_);
            qk_norm_ = QkNorm{};
        }
        flush_norm_mat();
    }
    void flush_norm_mat() {
        if (norm_.on) {
            norm_.on = false;
            rms_norm_dev(norm_.x, norm_.w, 1, norm_.width, hp_.rms_eps, norm_.y, stream_);
        }
        if (mat_.n > 1 && mat_.y[0] == q_) {  // wq with wk (and wv): one launch
            const void *w[3];
            int64_t rows[3];
            for (int i = 0; i < mat_.n; i++) w[i] = dev(*mat_.W[i]), rows[i] = mat_.W[i]->ne1;
            const Tensor &W = *mat_.W[0];
            matvec_q8_multi_dev(W.type, mat_.n, w, rows, mat_.y, W.row_bytes, W.ne0, xq_, stream_);
            mat_.n = 0;
        }
        for (int i = 0; i < mat_.n; i++) {
            const Tensor &W = *mat_.W[i];
            matvec_q8_dev(W.type, dev(W), W.row_bytes, W.ne1, W.ne0, xq_, mat_.y[i], stream_);
        }
        mat_.n = 0;
    }
    // xq_ = x quantized for `kind`, unless it already is (wq, wk, wv and gate, up share it).
    void ensure_q8(Q8Kind kind, const float *x, int64_t n) {
        if (q8_src_ == x && q8_version_ == writes_ && q8_kind_ == kind) return;
        quantize_q8_dev(kind, x, n, xq_, stream_);
        q8_src_ = x;
        q8_version_ = writes_;
        q8_kind_ = kind;
    }

    // Kernel nodes and programmatic edges of a captured graph (tactic_cuda_graph_stats).
    static void record_graph_stats(cudaGraph_t g) {
        size_t n_nodes = 0;
        if (cudaGraphGetNodes(g, nullptr, &n_nodes) != cudaSuccess) return (void)cudaGetLastError();
        std::vector<cudaGraphNode_t> nodes(n_nodes);
        int64_t kernels = 0, programmatic = -1;
        if (n_nodes && cudaGraphGetNodes(g, nodes.data(), &n_nodes) == cudaSuccess)
            for (cudaGraphNode_t nd : nodes) {
                cudaGraphNodeType t;
                if (cudaGraphNodeGetType(nd, &t) == cudaSuccess && t == cudaGraphNodeTypeKernel) kernels++;
            }
#if CUDART_VERSION >= 12030
        size_t n_edges = 0;
#if CUDART_VERSION >= 13000
        const cudaError_t e = cudaGraphGetEdges(g, nullptr, nullptr, nullptr, &n_edges);
#else
        const cudaError_t e = cudaGraphGetEdges_v2(g, nullptr, nullptr, nullptr, &n_edges);
#endif
        if (e == cudaSuccess) {
            std::vector<cudaGraphNode_t> from(n_edges), to(n_edges);
            std::vector<cudaGraphEdgeData> data(n_edges);
#if CUDART_VERSION >= 13000
            const cudaError_t e2 = cudaGraphGetEdges(g, from.data(), to.data(), data.data(), &n_edges);
#else
            const cudaError_t e2 = cudaGraphGetEdges_v2(g, from.data(), to.data(), data.data(), &n_edges);
#endif
            if (e2 == cudaSuccess) {
                programmatic = 0;
                for (size_t i = 0; i < n_edges; i++)
                    programmatic += data[i].type == cudaGraphDependencyTypeProgrammatic ? 1 : 0;
            }
        }
#endif
        cudaGetLastError();
        set_graph_stats(kernels, programmatic);
    }

    // (the bucket's side of kAttnLongKv: attn_kernel 32 picks its kernel by it)
    int graph_key() const { return (n_splits_ * 2 + (tactic_on_ ? 1 : 0)) * 2 + (bucket_ >= kAttnLongKv ? 1 : 0); }
    static uint64_t tensor_bytes(const Tensor &t) { return uint64_t(t.row_bytes) * uint64_t(t.ne1); }

    void collect_tensors() {
        auto add = [&](const Tensor &t) {
            if (t) tensors_.push_back(&t);
        };
        if (!layers_only_) {  // a split pass embeds and ends on the CPU
            add(M_.tok_embd);
            add(M_.output_norm);
            add(M_.output);
        }
        add(M_.rope_freqs);
        for (int il = 0; il < n_dev_layers_; il++) {
            const LayerWeights &L = M_.layers[size_t(il)];
            for (const Tensor *t : {&L.attn_norm, &L.wq, &L.wk, &L.wv, &L.wo, &L.bq, &L.bk, &L.bv, &L.bo, &L.q_norm,
                                    &L.k_norm, &L.post_attn_norm, &L.ffn_norm, &L.ffn_gate, &L.ffn_up, &L.ffn_down,
                                    &L.post_ffn_norm})
                add(*t);
        }
    }

    void *alloc(size_t bytes) {
        void *p = nullptr;
        TACTIC_CU(cudaMalloc(&p, std::max<size_t>(bytes, 16)));
        allocs_.push_back(p);
        return p;
    }
    void free_one(void *p) {
        cudaFree(p);
        allocs_.erase(std::find(allocs_.begin(), allocs_.end(), p));
    }
    const void *dev(const Tensor &t) const { return dev_ptr(t.data); }
    const void *dev_ptr(const void *host) const {
        auto it = dev_.find(host);
        TACTIC_CHECK(it != dev_.end(), TACTIC_ERR_INTERNAL, "CUDA backend: a tensor was not uploaded");
        return it->second;
    }

    // Y[n][W.ne1] = X[n][W.ne0] W^T
    void mat(const Tensor &W, const float *X, int n, float *Y) {
        const void *w = dev(W);
        Q8Kind kind;
        if (n == 1 && options().matvec_q8 && matvec_q8_kind(W.type, W.ne0, kind)) {
            // X quantized once for the matrices that read it in a row (wq, wk, wv; gate, up).
            ensure_q8(kind, X, W.ne0);
            matvec_q8_dev(W.type, w, W.row_bytes, W.ne1, W.ne0, xq_, Y, stream_);
            return;
        }
        if (Y == q8_src_) q8_src_ = nullptr;
        const bool q8 = options().matvec_q8 && matvec_q8_kind(W.type, W.ne0, kind);
        Cublas *blas = n > 1 ? Cublas::get() : nullptr;
        if (!blas) {
            for (int t = 0; t < n; t++) {
                const float *x = X + size_t(t) * W.ne0;
                float *y = Y + size_t(t) * W.ne1;
                if (q8) {
                    quantize_q8_dev(kind, x, W.ne0, xq_, stream_);
                    matvec_q8_dev(W.type, w, W.row_bytes, W.ne1, W.ne0, xq_, y, stream_);
                } else {
                    matvec_dev(W.type, w, W.row_bytes, W.ne1, W.ne0, x, y, stream_);
                }
            }
            q8_src_ = nullptr;
            return;
        }
        const size_t wn = size_t(W.ne0) * size_t(W.ne1);
        if (w16_cap_ < wn) {  // the output matrix, for logits of every row
            if (w16_) free_one(w16_);
            w16_ = static_cast<__half *>(alloc(wn * sizeof(__half)));
            w16_cap_ = wn;
        }
        // x16_ holds nb_ rows of the widest activation (output rows are E wide).
        dequantize_f16_dev(W.type, w, W.row_bytes, W.ne1, W.ne0, w16_, stream_);
        // Quantized weights multiply activations rounded to the CPU's 8-bit blocks (as
        // decode and the CPU do), carried in f16: the GEMM's only extra rounding is f16's.
        if (q8) quantize_q8_to_f16_dev(kind, X, int64_t(n) * W.ne0, x16_, stream_);
        else to_f16_dev(X, int64_t(n) * W.ne0, x16_, stream_);
        blas->gemm_tn(stream_, int(W.ne1), n, int(W.ne0), w16_, int(W.ne0), x16_, int(W.ne0), Y, int(W.ne1));
    }

    void abort_capture() {
        if (!capturing_) return;
        cudaGraph_t g = nullptr;
        cudaStreamEndCapture(stream_, &g);
        if (g) cudaGraphDestroy(g);
        cudaGetLastError();
        capturing_ = false;
    }

    float *buf(Buf b) const {
        switch (b) {
            case Buf::X: return x_;
            case Buf::H: return h_;
            case Buf::Q: return q_;
            case Buf::K: return k_;
            case Buf::V: return v_;
            case Buf::Att: return att_;
            case Buf::Tmp: return tmp_;
            case Buf::Gate: return gate_;
            case Buf::Up: return up_;
        }
        return nullptr;
    }

    const Model &M_;
    const HParams &hp_;
    int n_ctx_, nb_;
    int n_dev_layers_;   // layers [0, n_dev_layers_) run here
    bool layers_only_;   // a split pass: no embedding, no output head
    float *h_xin_ = nullptr, *h_xout_ = nullptr;
    bool described_ = false;  // begin() returned true (not a replayed graph)
    std::vector<const Tensor *> tensors_;
    std::unordered_map<const void *, void *> dev_;
    std::vector<void *> allocs_;
    cudaStream_t stream_ = nullptr;
    size_t kv_layer_ = 0;
    __half *k_cache_ = nullptr, *v_cache_ = nullptr;
    float *x_ = nullptr, *h_ = nullptr, *tmp_ = nullptr, *q_ = nullptr, *att_ = nullptr, *k_ = nullptr,
          *v_ = nullptr, *gate_ = nullptr, *up_ = nullptr;
    float *logits1_ = nullptr, *logits_many_ = nullptr, *out_dev_ = nullptr;
    size_t logits_many_cap_ = 0;
    float *part_acc_ = nullptr, *part_ml_ = nullptr;
    int32_t *attn_done_ = nullptr;  // decode attention's per-head counters (attn_kernel 2)
    int max_splits_ = 1, n_splits_ = 1;
    int64_t bucket_ = 256;  // the decode step's bucket (a power of two >= the position + 1)
    __half *x16_ = nullptr, *w16_ = nullptr;
    size_t w16_cap_ = 0;
    Q8Act xq_;  // decode activations quantized to 8 bits (matvec_q8)
    struct PendingAttn {
        bool on = false;
        DecodeAttn a;
    } attn_;  // decode attention held for the next matmul (flush_attention)
    PendingNorm norm_;
    PendingMat mat_;
    PendingAdd add_;
    QkNorm qk_norm_;
    Q8Kind q8_kind_ = Q8Kind::K;
    const float *q8_src_ = nullptr;
    uint64_t writes_ = 0, q8_version_ = ~uint64_t(0);  // ops so far; xq_ is valid while none wrote since
    int32_t *d_tokens_ = nullptr, *d_pos_ = nullptr;
    int32_t *h_in_ = nullptr;
    float *h_logits_ = nullptr;
    std::vector<int32_t> pos_host_;
    std::map<int, cudaGraphExec_t> graphs_;  // by graph_key(): attention split count, Tactic on
    std::unique_ptr<TacticGpu> tactic_;      // null: full attention only
    bool tactic_on_ = false;                 // this decode step attends the global layers through Tactic
    bool capturing_ = false;
    int n_ = 0, pos0_ = 0, out_rows_ = 0;
    float *out_dst_ = nullptr;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const Model &model, int n_ctx, int n_batch,
                                           const tactic_context_params *params, int n_layers) {
    return std::make_unique<CudaBackend>(model, n_ctx, n_batch, params, n_layers);
}

}  // namespace tactic
