// C ABI test hooks of the CPU attention (the forward pass's own block loop, and the
// AVX-512 block kernel alone in either lane layout), so tests can hold its
// implementations equal on the same inputs.
#include <algorithm>
#include <limits>
#include <string>
#include <time.h>
#include <vector>

#include "../cpu/attention.h"
#include "../cpu_features.h"
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

TACTIC_API tactic_status tactic_bench_attention_block(const uint16_t *K, const uint16_t *V, int32_t n_kv,
                                                     const float *q, int32_t n_tokens, int32_t group,
                                                     int32_t head_dim, const int32_t *lo, const int32_t *hi,
                                                     int32_t j_begin, int32_t j_end, int32_t layout,
                                                     int32_t n_iter, float *m, float *l, float *acc,
                                                     double *seconds) {
    return tactic::guard([&] {
        TACTIC_REQUIRE_ARG(K && V && q && lo && hi && m && l && acc, "attention_block: pointers must not be NULL");
        TACTIC_REQUIRE_ARG(n_tokens > 0 && group > 0 && layout >= 0 && layout <= 2 && n_iter > 0,
                           "attention_block: n_tokens, group, layout or n_iter out of range");
        TACTIC_REQUIRE_ARG(0 <= j_begin && j_begin <= j_end && j_end <= n_kv,
                           "attention_block: need 0 <= j_begin <= j_end <= n_kv");
        for (int t = 0; t < n_tokens; t++)
            TACTIC_REQUIRE_ARG(0 <= lo[t] && lo[t] <= hi[t] && hi[t] <= n_kv,
                               "attention_block: need 0 <= lo[t] <= hi[t] <= n_kv");
        TACTIC_CHECK(tactic::cpu_has_avx512_vnni(), TACTIC_ERR_UNSUPPORTED, "attention_block: this CPU lacks AVX-512");
        TACTIC_REQUIRE_ARG(tactic::attend_block_avx512_supports(n_tokens * group, head_dim, layout),
                           "attention_block: too many rows for the layout, or head_dim not a multiple of 64");
        // thread CPU time: the kernel runs on this thread alone, and a loaded machine's
        // preemption stays out of the number
        timespec t0, t1;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
        for (int it = 0; it < n_iter; it++) {
            const int R = n_tokens * group;
            std::fill_n(m, R, -std::numeric_limits<float>::infinity());  // the state of no keys
            std::fill_n(l, R, 0.f);
            std::fill_n(acc, size_t(R) * head_dim, 0.f);
            tactic::attend_block_avx512(q, int64_t(group) * head_dim, n_tokens, group, head_dim, K, V,
                                        tactic::KeyMap{}, lo, hi, j_begin, j_end, m, l, acc, layout);
        }
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
        if (seconds) *seconds = (double(t1.tv_sec - t0.tv_sec) + 1e-9 * double(t1.tv_nsec - t0.tv_nsec)) / n_iter;
    });
}

}  // extern "C"
