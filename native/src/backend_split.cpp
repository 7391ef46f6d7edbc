// A pass split across two backends (n_gpu_layers, as llama.cpp's -ngl): layers
// [0, n_gpu) on a layers-only CUDA backend; the token embedding, layers [n_gpu, n_layer)
// and the output head on the CPU backend. The hidden state X crosses twice a pass:
// host -> GPU after the embedding, GPU -> host after layer n_gpu - 1. The GPU part is a
// pass of its own (a decode step's is captured once and replayed as a CUDA graph, the
// two copies inside it); the CPU part needs its result, so a split context evaluates
// synchronously (end_async() ends the pass).
#include <algorithm>
#include <cstring>
#include <vector>

#include "backend.h"
#include "common.h"
#include "kv_cache.h"

namespace tactic {

namespace {

class SplitBackend final : public Backend {
public:
    SplitBackend(std::unique_ptr<Backend> gpu, std::unique_ptr<Backend> cpu, int n_gpu, int n_embd)
        : gpu_(std::move(gpu)), cpu_(std::move(cpu)), n_gpu_(n_gpu), n_embd_(n_embd) {}

    bool begin(const int32_t *tokens, int n, int pos0, float *logits) override {
        tokens_ = tokens;
        n_ = n;
        pos0_ = pos0;
        on_gpu_ = gpu_open_ = false;
        cpu_->begin(tokens, n, pos0, logits);  // the CPU backend always describes its part
        return true;
    }

    void embed(const Tensor &W, float scale) override { cpu_->embed(W, scale); }

    void layer(int il) override {
        if (il == 0) {  // X to the GPU; its pass may be a replayed graph (then nothing to describe)
            std::memcpy(gpu_->hidden_in(), cpu_->hidden_out(), x_bytes());
            gpu_open_ = on_gpu_ = true;
            gpu_describe_ = gpu_->begin(tokens_, n_, pos0_, nullptr);
        } else if (il == n_gpu_) {
            finish_gpu();
        }
    }

    void rms_norm(Buf src, const Tensor &w, Buf dst, int width, int rows) override {
        if (Backend *b = op()) b->rms_norm(src, w, dst, width, rows);
    }
    void matmul(const Tensor &W, Buf src, int ldx, Buf dst, int ldy) override {
        if (Backend *b = op()) b->matmul(W, src, ldx, dst, ldy);
    }
    void add_bias(Buf dst, int ld, const Tensor &bias) override {
        if (Backend *b = op()) b->add_bias(dst, ld, bias);
    }
    void rope_store_kv(int il, const RopeConfig &rc, float q_scale) override {
        if (Backend *b = op()) b->rope_store_kv(il, rc, q_scale);
    }
    void attention(int il, bool swa, int window) override {
        if (Backend *b = op()) b->attention(il, swa, window);
    }
    void add(Buf dst, Buf src, int width) override {
        if (Backend *b = op()) b->add(dst, src, width);
    }
    void gated_activation(Activation act) override {
        if (Backend *b = op()) b->gated_activation(act);
    }
    void output(const Tensor &norm, float eps, const Tensor &W, float cap, int first, int n_out, float *dst) override {
        if (gpu_open_) finish_gpu();
        cpu_->output(norm, eps, W, cap, first, n_out, dst);
    }
    void end() override {
        if (gpu_open_) finish_gpu();  // a pass without logits still brings X back (unused)
        cpu_->end();
    }

    bool cancelled_between_layers() const override { return on_gpu_ ? gpu_->cancelled_between_layers() : true; }
    void truncate(int n_keep) override {
        gpu_->truncate(n_keep);
        cpu_->truncate(n_keep);
    }
    void kv_to_host(KVCache &kv, int n_past) override { kv_copy(&kv, nullptr, n_past); }
    void kv_from_host(const KVCache &kv, int n_past) override { kv_copy(nullptr, &kv, n_past); }
    double clustering_seconds() const override { return gpu_->clustering_seconds() + cpu_->clustering_seconds(); }
    void reset_timings() override {
        gpu_->reset_timings();
        cpu_->reset_timings();
    }

private:
    size_t x_bytes() const { return size_t(n_) * size_t(n_embd_) * sizeof(float); }
    // The backend that runs the op now; null while a replayed GPU graph already holds it.
    Backend *op() { return on_gpu_ ? (gpu_describe_ ? gpu_.get() : nullptr) : cpu_.get(); }
    void finish_gpu() {
        gpu_open_ = on_gpu_ = false;
        gpu_->end();
        std::memcpy(cpu_->hidden_in(), gpu_->hidden_out(), x_bytes());
    }

    // The GPU layers' rows of the positions the host cache keeps of them ([first, n_past):
    // a sliding-window ring only its last slots; the device keeps every position).
    void kv_copy(KVCache *to, const KVCache *from, int n_past) {
        const KVCache &kv = to ? *to : *from;
        const size_t row = size_t(kv.head_dim);
        std::vector<uint16_t> rows;
        for (int il = 0; il < n_gpu_; il++) {
            const int first = kv.ring[size_t(il)] ? std::max(kv.ring_lo, n_past - kv.slots[size_t(il)]) : 0;
            if (first >= n_past) continue;
            rows.resize(size_t(n_past - first) * row);
            for (int h = 0; h < kv.n_head_kv; h++)
                for (bool v : {false, true}) {
                    if (to) gpu_->kv_rows(true, il, h, v, first, n_past - first, rows.data());
                    for (int pos = first; pos < n_past; pos++) {
                        uint16_t *r = rows.data() + size_t(pos - first) * row;
                        if (to) std::memcpy(v ? to->v_at(il, h, pos) : to->k_at(il, h, pos), r, row * 2);
                        else std::memcpy(r, v ? from->v_at(il, h, pos) : from->k_at(il, h, pos), row * 2);
                    }
                    if (from) gpu_->kv_rows(false, il, h, v, first, n_past - first, rows.data());
                }
        }
    }

    std::unique_ptr<Backend> gpu_, cpu_;
    int n_gpu_, n_embd_;
    const int32_t *tokens_ = nullptr;
    int n_ = 0, pos0_ = 0;
    bool on_gpu_ = false, gpu_open_ = false, gpu_describe_ = false;
};

}  // namespace

std::unique_ptr<Backend> make_split_backend(std::unique_ptr<Backend> gpu, std::unique_ptr<Backend> cpu, int n_gpu,
                                            int n_embd) {
    TACTIC_CHECK(gpu && cpu && n_gpu > 0, TACTIC_ERR_INTERNAL, "split backend: two backends and n_gpu > 0 expected");
    return std::make_unique<SplitBackend>(std::move(gpu), std::move(cpu), n_gpu, n_embd);
}

}  // namespace tactic
