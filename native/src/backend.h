// The seam between the transformer pass and where it runs. forward.cpp describes a
// layer once as calls on a Backend; the CPU backend (backend_cpu.cpp) runs them on
// host buffers with the thread pool, the CUDA backend (cuda/backend_cuda.cu) on GPU
// buffers with the weights, the f16 KV cache and the activations in device memory.
// No CUDA type crosses this header.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "cpu/ops.h"
#include "model.h"
#include "tactic.h"

namespace tactic {

struct KVCache;
class ThreadPool;
class TacticAttention;

// The activation buffers of one pass, each [n tokens][width].
enum class Buf { X, H, Q, K, V, Att, Tmp, Gate, Up };

class Backend {
public:
    virtual ~Backend() = default;

    // Starts a pass over n tokens at positions pos0.. whose logits (if any) land in
    // `logits` (null: none wanted). Returns false when the backend ran the whole pass
    // itself (a recorded decode step replayed): then the caller skips the description
    // and goes straight to end().
    virtual bool begin(const int32_t *tokens, int n, int pos0, float *logits) = 0;
    // X = tok_embd[tokens] * scale
    virtual void embed(const Tensor &tok_embd, float scale) = 0;
    // dst rows = RMSNorm(src rows) * w, rows of `width` (rows counts every row: n or n * heads).
    virtual void rms_norm(Buf src, const Tensor &w, Buf dst, int width, int rows) = 0;
    // dst[t][0..W.ne1) = W src[t] for every token t; ld*: row strides in floats.
    virtual void matmul(const Tensor &W, Buf src, int ldx, Buf dst, int ldy) = 0;
    virtual void add_bias(Buf dst, int ld, const Tensor &bias) = 0;
    // RoPE on Q and K; Q scaled by q_scale and rounded to f16 (as llama.cpp's f16 K.Q);
    // K and V written to the layer's f16 cache at their positions.
    virtual void rope_store_kv(int il, const RopeConfig &rc, float q_scale) = 0;
    // Att = softmax(Q K^T) V over the cache: causal; for a sliding-window layer only the
    // last `window` positions (window 0: all).
    virtual void attention(int il, bool swa, int window) = 0;
    // dst += src over n * width elements.
    virtual void add(Buf dst, Buf src, int width) = 0;
    // Gate = act(Gate) * Up
    virtual void gated_activation(Activation act) = 0;
    // Logits of token rows [first, first + n_out) into dst (begin's `logits`): RMSNorm,
    // output matrix, softcap (0: none).
    virtual void output(const Tensor &norm, float eps, const Tensor &W, float softcap, int first, int n_out,
                        float *dst) = 0;
    // Finishes the pass: when it returns, the logits are in the dst given to output().
    virtual void end() = 0;
    // end() that may return before the device finishes: then true, and wait() completes
    // it (the logits land in begin's dst). Backends that compute on the host just end().
    virtual bool end_async() {
        end();
        return false;
    }
    virtual void wait() {}
    virtual bool cancelled_between_layers() const { return true; }
    // Layer il's description follows (a split pass moves to the next backend here).
    virtual void layer(int il) { (void)il; }
    // A split pass (n_gpu_layers): the hidden state X of the pass's n tokens as host
    // memory [n][n_embd]. hidden_in(): where X is written before begin() (a layers-only
    // CUDA backend copies it in as its first step); hidden_out(): X after end(). The CPU
    // backend's X is host memory already: both are X itself (after begin()).
    virtual float *hidden_in() { return nullptr; }
    virtual const float *hidden_out() { return nullptr; }
    // A split context's state (context_state.cpp): the device layers' K/V of positions
    // [0, n_past) copied into the host cache, where the state blob reads every layer,
    // and back after a restore wrote them there. No-ops where the host cache is the cache.
    virtual void kv_to_host(KVCache &kv, int n_past) { (void)kv, (void)n_past; }
    virtual void kv_from_host(const KVCache &kv, int n_past) { (void)kv, (void)n_past; }
    // A device cache's rows of layer il, KV head h, K (or V when v), positions
    // [first, first + n), copied to (to_host) or from host rows [n][head_dim] f16.
    virtual void kv_rows(bool to_host, int il, int h, bool v, int first, int n, uint16_t *host) {
        (void)to_host, (void)il, (void)h, (void)v, (void)first, (void)n, (void)host;
    }
    // The cache now keeps n_keep tokens (a rewind): state derived from later ones goes.
    virtual void truncate(int n_keep) { (void)n_keep; }
    // Seconds a backend-side Tactic spent clustering since the last reset (tactic_get_timings).
    virtual double clustering_seconds() const { return 0.0; }
    virtual void reset_timings() {}
};

// TACTIC_DEVICE_AUTO becomes CUDA when a usable GPU is there (and the library has CUDA),
// else CPU. Never throws.
int32_t resolve_device(int32_t requested);

struct CpuBackendRefs {
    const Model &model;
    ThreadPool &pool;
    KVCache &kv;
    TacticAttention *tactic;
    const tactic_context_params &params;
    double &t_decode_attn;
};
std::unique_ptr<Backend> make_cpu_backend(const CpuBackendRefs &refs);
// Uploads the model's weights, allocates the device KV cache for n_ctx tokens and a
// workspace for n_batch tokens; Error(OUT_OF_MEMORY) with the numbers before allocating
// when they would not fit, Error(UNSUPPORTED) without a usable GPU. params (may be null:
// full attention) says whether and how global layers attend through Tactic.
// n_layers < n_layer: layers-only (a split pass): only layers [0, n_layers) are uploaded
// and have a device KV cache; no embedding and no output head, X goes in through
// hidden_in() and comes back through hidden_out().
std::unique_ptr<Backend> make_cuda_backend(const Model &model, int n_ctx, int n_batch,
                                           const tactic_context_params *params = nullptr, int n_layers = -1);
// Layers [0, n_gpu) on `gpu` (a layers-only CUDA backend), the embedding, the other
// layers and the output head on `cpu`; X crosses to the GPU after the embedding and
// back after layer n_gpu - 1 (backend_split.cpp).
std::unique_ptr<Backend> make_split_backend(std::unique_ptr<Backend> gpu, std::unique_ptr<Backend> cpu, int n_gpu,
                                            int n_embd);

}  // namespace tactic
