// C ABI test hook of the CPU prefill attention (the forward pass's own block loop), so
// tests can hold its implementations equal on the same inputs.
#include <algorithm>
#include <string>
#include <vector>

#include "../cpu/attention.h"
#include "../quant.h"
#include "guard.h"
#include "tactic_internal.h"  // declares this hook

extern "C" {

TACTIC_API tactic_status tactic_bench_prefill_attention(const uint16_t *K, const uint16_t *V, int32_t n_kv,
                                                       const float *q, int32_t n_tokens, int32_t group,
                                                       int32_t head_dim, int32_t pos0, int32_t window,
                                                       int32_t impl, float *out) {
    return tactic::guard([&] {
        TACTIC_REQUIRE_ARG(K && V && q && out, "prefill_attention: K, V, q and out must not be NULL");
        TACTIC_REQUIRE_ARG(n_tokens > 0 && group > 0 && group <= 64 && head_dim > 0 && head_dim <= 1024 &&
                               pos0 >= 0 && window >= 0,
                           "prefill_attention: n_tokens, group, head_dim, pos0 or window out of range");
        TACTIC_REQUIRE_ARG(int64_t(pos0) + n_tokens <= n_kv, "prefill_attention: n_kv must be >= pos0 + n_tokens");
        TACTIC_REQUIRE_ARG(impl >= 0 && impl <= 3, "prefill_attention: impl must be 0, 1, 2 or 3");
        TACTIC_CHECK(tactic::kernel_impl_available(impl), TACTIC_ERR_UNSUPPORTED,
                     "prefill_attention: this CPU cannot run kernel implementation " + std::to_string(impl));
        const int bt = tactic::query_block_tokens(group);
        const int64_t stride = int64_t(group) * head_dim;
        std::vector<int> lo(static_cast<size_t>(bt)), hi(static_cast<size_t>(bt));
        for (int t0 = 0; t0 < n_tokens; t0 += bt) {
            const int nt = std::min(bt, n_tokens - t0);
            for (int k = 0; k < nt; k++) {
                const int pos = pos0 + t0 + k;
                lo[size_t(k)] = window > 0 ? std::max(0, pos - window + 1) : 0;
                hi[size_t(k)] = pos + 1;
            }
            tactic::attend_query_block(q + t0 * stride, stride, nt, group, head_dim, K, V, tactic::KeyMap{}, lo.data(),
                                       hi.data(),
                                       out + t0 * stride, stride, impl);
        }
    });
}

}  // extern "C"
