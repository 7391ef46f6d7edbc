#include "kv_cache.h"

namespace tactic {

uint64_t KVCache::bytes_needed(int n_layer, int n_head_kv, int n_ctx, int head_dim) {
    return 2ull * uint64_t(n_layer) * uint64_t(n_head_kv) * uint64_t(n_ctx) * uint64_t(head_dim) * sizeof(uint16_t);
}

void KVCache::allocate(int n_layer_, int n_head_kv_, int n_ctx_, int head_dim_) {
    n_layer = n_layer_;
    n_head_kv = n_head_kv_;
    n_ctx = n_ctx_;
    head_dim = head_dim_;
    const size_t per_layer = size_t(n_head_kv) * size_t(n_ctx) * size_t(head_dim);
    k.assign(size_t(n_layer), std::vector<uint16_t>(per_layer));
    v.assign(size_t(n_layer), std::vector<uint16_t>(per_layer));
}

}  // namespace tactic
