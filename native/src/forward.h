// A context: the KV cache of one sequence and the transformer pass over it, for
// prefill (many tokens, matrix-matrix) and decode (one token).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "kv_cache.h"
#include "model.h"
#include "tactic.h"
#include "threadpool.h"

namespace tactic {

class TacticAttention;
class Backend;

class Context {
public:
    Context(const Model &model, const tactic_context_params &params);  // validates; throws Error
    ~Context();

    // Evaluates tokens after the cached ones; keeps logits of every row or of the last.
    void eval(const int32_t *tokens, int n, bool logits_all);
    // Decodes one token and returns once the device has the work (CUDA: the step's graph
    // is launched), so that the caller can do host work meanwhile (a grammar's next
    // mask). sync() waits for it; so does every call that needs its result (eval,
    // truncate, logits via the C API, ...). On the CPU the token is evaluated at once.
    void eval_async(int32_t token);
    // Finishes the step eval_async began (nothing when none is pending).
    void sync();
    // Keeps n_keep tokens, or fewer when sliding-window rings no longer hold what
    // position n_keep attends (see KVCache::truncate); n_past() tells.
    void truncate(int n_keep);
    // Remembers the sliding-window rings here so that prefix reuse can come back to it.
    void checkpoint() {
        sync();
        kv_.checkpoint(n_past_);
    }
    int64_t n_evaluated() const { return n_evaluated_; }  // tokens evaluated since created
    const KVCache &kv() const { return kv_; }
    // The evaluated tokens' K/V (context_state.cpp): size, write, and restore (all-or-nothing).
    // settle_tactic() first builds the Tactic clusters the next decode step would build,
    // so that they are saved too (it changes no result: they are built the same either way).
    void settle_tactic();
    // Before state_size / state_write: a split context's GPU layers' K/V into the host
    // cache (the blob reads every layer there), then settle_tactic().
    void prepare_state();
    size_t state_size() const;
    void state_write(uint8_t *dst, size_t size) const;
    void state_read(const uint8_t *src, size_t size);
    void cancel() { cancel_.store(true); }

    int n_ctx() const { return n_ctx_; }
    int n_past() const { return n_past_; }
    int n_logit_rows() const { return n_logit_rows_; }
    const float *logits(int row) const;
    const tactic_context_params &params() const { return params_; }
    int32_t device() const { return device_; }  // TACTIC_DEVICE_CPU or TACTIC_DEVICE_CUDA
    // Layers on the GPU: 0 (CPU), n_layer (CUDA), or the first n of a split (n_gpu_layers).
    int n_gpu_layers() const { return n_gpu_; }
    TacticAttention *tactic() { return tactic_.get(); }
    // [0] prefill, [1] clustering, [2] decode, [3] decode attention in global layers, [4] selection
    void timings(double *out, int n, bool reset);

private:
    void check_eval(const int32_t *tokens, int n) const;
    // Returns true when the backend left the step running (async: finished by sync()).
    bool forward_batch(const int32_t *tokens, int n, int pos0, bool want_logits, bool async = false);

    const Model &model_;
    tactic_context_params params_;
    int n_ctx_ = 0;
    int n_past_ = 0;
    int n_batch_ = 512;
    KVCache kv_;
    std::unique_ptr<ThreadPool> pool_;
    int32_t device_ = TACTIC_DEVICE_CPU;
    int n_gpu_ = 0;
    std::unique_ptr<Backend> backend_;
    std::unique_ptr<TacticAttention> tactic_;
    std::vector<float> logits_;
    int n_logit_rows_ = 0;
    int64_t n_evaluated_ = 0;
    std::atomic<bool> cancel_{false};
    double t_prefill_ = 0, t_decode_ = 0, t_decode_attn_ = 0;
    bool pending_ = false;  // eval_async's step is still on the device
    std::chrono::steady_clock::time_point t_pending_;
};

}  // namespace tactic
