// The KV cache: f16 keys and values per layer, laid out [n_head_kv][n_ctx][head_dim]
// so that each KV head's keys are contiguous (what attention and clustering scan).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tactic {

struct KVCache {
    int n_layer = 0, n_head_kv = 0, n_ctx = 0, head_dim = 0;
    std::vector<std::vector<uint16_t>> k, v;  // per layer

    // Bytes the cache will take for these sizes (to refuse before allocating).
    static uint64_t bytes_needed(int n_layer, int n_head_kv, int n_ctx, int head_dim);
    void allocate(int n_layer_, int n_head_kv_, int n_ctx_, int head_dim_);

    uint16_t *k_at(int il, int h, int pos) { return k[size_t(il)].data() + (size_t(h) * n_ctx + size_t(pos)) * head_dim; }
    uint16_t *v_at(int il, int h, int pos) { return v[size_t(il)].data() + (size_t(h) * n_ctx + size_t(pos)) * head_dim; }
};

}  // namespace tactic
