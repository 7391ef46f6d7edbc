// C ABI of the CUDA backend's kernels, for tests and benchmarks (tactic.h, CUDA
// block). Arguments are checked here, so the backend sees only valid shapes. Built
// without CUDA, every entry point reports TACTIC_ERR_UNSUPPORTED.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "../quant.h"
#include "guard.h"
#include "tactic_internal.h"  // defines hooks declared there

#ifdef TACTIC_HAVE_CUDA
#include "cuda_backend.h"
#include "tactic_gpu.h"
#endif

using tactic::guard;

namespace {

#ifdef TACTIC_HAVE_CUDA
void check_rows(int32_t type, size_t size, int64_t n_rows, int64_t n_per_row, const char *what, size_t *row_bytes) {
    TACTIC_REQUIRE_ARG(n_rows >= 0 && n_per_row > 0, std::string(what) + ": n_rows must be >= 0 and n_per_row > 0");
    TACTIC_REQUIRE_ARG(n_rows <= (int64_t(1) << 31) && n_per_row <= (int64_t(1) << 30),
                       std::string(what) + ": matrix too large");
    TACTIC_CHECK(tactic::cuda::type_supported(uint32_t(type)), TACTIC_ERR_UNSUPPORTED,
                 std::string(what) + ": type " + std::to_string(type) + " is not supported by the CUDA kernels");
    const int bs = tactic::type_traits(uint32_t(type)).block_size;
    TACTIC_REQUIRE_ARG(bs > 0 && n_per_row % bs == 0,
                       std::string(what) + ": n_per_row must be a multiple of the block size " + std::to_string(bs));
    *row_bytes = tactic::row_size(uint32_t(type), n_per_row);
    TACTIC_REQUIRE_ARG(size >= *row_bytes * size_t(n_rows),
                       std::string(what) + ": the input holds fewer bytes than n_rows rows need");
}

// Checks the arguments both attention entry points share and fills them in.
tactic::cuda::AttentionArgs check_attention(const float *q, int32_t n_head, int32_t n_head_kv, int32_t head_dim,
                                            const uint16_t *k, const uint16_t *v, int32_t n_ctx, float scale,
                                            float *out) {
    TACTIC_REQUIRE_ARG(q && k && v && out, "attention: q, k, v and out must not be NULL");
    TACTIC_REQUIRE_ARG(n_head > 0 && n_head_kv > 0 && n_head % n_head_kv == 0,
                       "attention: n_head must be a positive multiple of n_head_kv");
    TACTIC_REQUIRE_ARG(n_ctx > 0 && head_dim > 0, "attention: n_ctx and head_dim must be positive");
    TACTIC_CHECK(head_dim == 64 || head_dim == 128 || head_dim == 256, TACTIC_ERR_UNSUPPORTED,
                 "attention: head_dim must be 64, 128 or 256");
    tactic::cuda::AttentionArgs a;
    a.q = q;
    a.n_head = n_head;
    a.n_head_kv = n_head_kv;
    a.head_dim = head_dim;
    a.n_ctx = n_ctx;
    a.k = k;
    a.v = v;
    a.scale = scale;
    a.out = out;
    return a;
}
#endif

#ifndef TACTIC_HAVE_CUDA
[[noreturn]] void no_cuda() { tactic::fail(TACTIC_ERR_UNSUPPORTED, "built without CUDA"); }
#endif

}  // namespace

extern "C" {

TACTIC_API int32_t tactic_cuda_device_count(void) {
#ifdef TACTIC_HAVE_CUDA
    try {
        return tactic::cuda::device_count();
    } catch (...) {
        return 0;
    }
#else
    return 0;
#endif
}

TACTIC_API tactic_status tactic_cuda_device_name(int32_t device, char *buf, int32_t cap) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(buf && cap > 0, "buf must not be NULL and cap must be positive");
        buf[0] = 0;
#ifdef TACTIC_HAVE_CUDA
        const std::string name = tactic::cuda::device_name(device);
        const size_t n = std::min(name.size(), size_t(cap - 1));
        std::memcpy(buf, name.data(), n);
        buf[n] = 0;
#else
        no_cuda();
#endif
    });
}

TACTIC_API tactic_status tactic_cuda_set_option(const char *name, int64_t value) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(name, "name must not be NULL");
#ifdef TACTIC_HAVE_CUDA
        TACTIC_REQUIRE_ARG(tactic::cuda::set_option(name, value), std::string("unknown CUDA option '") + name + "'");
#else
        no_cuda();
#endif
    });
}

TACTIC_API double tactic_cuda_last_ms(void) {
#ifdef TACTIC_HAVE_CUDA
    return tactic::cuda::last_ms();
#else
    return -1.0;
#endif
}

TACTIC_API tactic_status tactic_cuda_step_trace(uint64_t *fused, uint64_t *score) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(fused && score, "step_trace: pointers must not be NULL");
#ifdef TACTIC_HAVE_CUDA
        const bool a = tactic::cuda::step_trace_fused(fused), b = tactic::cuda::step_trace_score(score);
        TACTIC_CHECK(a && b, TACTIC_ERR_UNSUPPORTED, "step_trace: not a trace build (cmake -DTACTIC_STEP_TRACE=ON)");
#else
        no_cuda();
#endif
    });
}

TACTIC_API tactic_status tactic_cuda_graph_stats(int64_t *kernel_nodes, int64_t *programmatic_edges) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(kernel_nodes && programmatic_edges, "graph_stats: pointers must not be NULL");
#ifdef TACTIC_HAVE_CUDA
        tactic::cuda::graph_stats(*kernel_nodes, *programmatic_edges);
#else
        no_cuda();
#endif
    });
}

TACTIC_API tactic_status tactic_cuda_dequantize(int32_t type, const void *src, size_t src_size, int64_t n_rows,
                                                int64_t n_per_row, float *dst) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(src && dst, "dequantize: src and dst must not be NULL");
#ifdef TACTIC_HAVE_CUDA
        size_t row_bytes = 0;
        check_rows(type, src_size, n_rows, n_per_row, "dequantize", &row_bytes);
        tactic::cuda::dequantize(uint32_t(type), src, row_bytes, n_rows, n_per_row, dst);
#else
        no_cuda();
#endif
    });
}

TACTIC_API tactic_status tactic_cuda_matvec(int32_t type, const void *w, size_t w_size, int64_t n_rows,
                                            int64_t n_cols, const float *x, float *y) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(w && x && y, "matvec: w, x and y must not be NULL");
#ifdef TACTIC_HAVE_CUDA
        size_t row_bytes = 0;
        check_rows(type, w_size, n_rows, n_cols, "matvec", &row_bytes);
        tactic::cuda::matvec(uint32_t(type), w, row_bytes, n_rows, n_cols, x, y);
#else
        no_cuda();
#endif
    });
}

TACTIC_API tactic_status tactic_cuda_matvec_q8_epilogue(int32_t type, const void *w0, const void *w1, size_t w_size,
                                                        int64_t n_rows, int64_t n_cols, const float *x, int32_t epi,
                                                        float *y) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(w0 && x && y, "matvec_q8_epilogue: w0, x and y must not be NULL");
        TACTIC_REQUIRE_ARG(epi >= 0 && epi <= 3, "matvec_q8_epilogue: epi must be 0, 1, 2 or 3");
        TACTIC_REQUIRE_ARG(epi < 2 || w1, "matvec_q8_epilogue: epi 2 and 3 need w1");
#ifdef TACTIC_HAVE_CUDA
        size_t row_bytes = 0;
        check_rows(type, w_size, n_rows, n_cols, "matvec_q8_epilogue", &row_bytes);
        tactic::cuda::matvec_q8_epilogue(uint32_t(type), w0, w1, row_bytes, n_rows, n_cols, x, epi, y);
#else
        no_cuda();
#endif
    });
}

TACTIC_API tactic_status tactic_cuda_rms_norm_q8(int32_t type, const float *x, const float *w, int32_t n, float eps,
                                                 float *y, float *xq) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(x && y && xq, "rms_norm_q8: x, y and xq must not be NULL");
        TACTIC_REQUIRE_ARG(n > 0 && eps >= 0.f, "rms_norm_q8: n must be > 0 and eps >= 0");
#ifdef TACTIC_HAVE_CUDA
        tactic::cuda::rms_norm_q8(uint32_t(type), x, w, n, eps, y, xq);
#else
        no_cuda();
#endif
    });
}

TACTIC_API tactic_status tactic_cuda_rms_norm(const float *x, const float *w, int64_t n_rows, int32_t n, float eps,
                                              float *y) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(x && y, "rms_norm: x and y must not be NULL");
        TACTIC_REQUIRE_ARG(n > 0 && n_rows >= 0 && n_rows <= (int64_t(1) << 31), "rms_norm: bad shape");
        TACTIC_REQUIRE_ARG(eps >= 0.f, "rms_norm: eps must be >= 0");
#ifdef TACTIC_HAVE_CUDA
        tactic::cuda::rms_norm(x, w, n_rows, n, eps, y);
#else
        no_cuda();
#endif
    });
}

TACTIC_API tactic_status tactic_cuda_rope(float *x, int32_t n_tokens, int32_t n_head, int32_t head_dim,
                                          const int32_t *pos, const tactic_cuda_rope_params *params) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(x && pos && params, "rope: x, pos and params must not be NULL");
        TACTIC_REQUIRE_ARG(n_tokens >= 0 && n_head > 0 && head_dim > 0, "rope: bad shape");
        const tactic_cuda_rope_params &p = *params;
        TACTIC_REQUIRE_ARG(p.n_rot > 0 && p.n_rot % 2 == 0 && p.n_rot <= head_dim,
                           "rope: n_rot must be even, positive and at most head_dim");
        TACTIC_REQUIRE_ARG(p.base > 0.f && p.freq_scale > 0.f, "rope: base and freq_scale must be positive");
        TACTIC_REQUIRE_ARG(!p.yarn || p.yarn_orig_ctx > 0, "rope: YaRN needs yarn_orig_ctx > 0");
#ifdef TACTIC_HAVE_CUDA
        tactic::cuda::RopeArgs a;
        a.neox = p.neox != 0;
        a.n_rot = p.n_rot;
        a.base = p.base;
        a.freq_scale = p.freq_scale;
        a.freq_factors = p.freq_factors;
        a.yarn = p.yarn != 0;
        a.attn_factor = p.attn_factor;
        a.yarn_orig_ctx = p.yarn_orig_ctx;
        tactic::cuda::rope(x, n_tokens, n_head, head_dim, pos, a);
#else
        no_cuda();
#endif
    });
}

TACTIC_API tactic_status tactic_cuda_attention(const float *q, int32_t n_head, int32_t n_head_kv, int32_t head_dim,
                                               const uint16_t *k, const uint16_t *v, int32_t n_ctx, int32_t lo,
                                               int32_t n, float scale, float *out) {
    return guard([&] {
#ifdef TACTIC_HAVE_CUDA
        tactic::cuda::AttentionArgs a = check_attention(q, n_head, n_head_kv, head_dim, k, v, n_ctx, scale, out);
        TACTIC_REQUIRE_ARG(0 <= lo && lo <= n && n <= n_ctx, "attention: need 0 <= lo <= n <= n_ctx");
        a.lo = lo;
        a.n = n;
        tactic::cuda::attention(a);
#else
        no_cuda();
#endif
    });
}

TACTIC_API tactic_status tactic_cuda_attention_indexed(const float *q, int32_t n_head, int32_t n_head_kv,
                                                       int32_t head_dim, const uint16_t *k, const uint16_t *v,
                                                       int32_t n_ctx, const int32_t *idx, const int64_t *offsets,
                                                       float scale, float *out) {
    return guard([&] {
#ifdef TACTIC_HAVE_CUDA
        tactic::cuda::AttentionArgs a = check_attention(q, n_head, n_head_kv, head_dim, k, v, n_ctx, scale, out);
        TACTIC_REQUIRE_ARG(offsets, "attention_indexed: offsets must not be NULL");
        TACTIC_REQUIRE_ARG(offsets[0] == 0, "attention_indexed: offsets[0] must be 0");
        for (int g = 0; g < n_head_kv; g++)
            TACTIC_REQUIRE_ARG(offsets[g + 1] >= offsets[g] && offsets[g + 1] - offsets[g] <= (int64_t(1) << 30),
                               "attention_indexed: offsets must be non-decreasing");
        const int64_t n_idx = offsets[n_head_kv];
        TACTIC_REQUIRE_ARG(n_idx == 0 || idx, "attention_indexed: idx must not be NULL");
        for (int64_t i = 0; i < n_idx; i++)
            TACTIC_REQUIRE_ARG(idx[i] >= 0 && idx[i] < n_ctx, "attention_indexed: index " + std::to_string(idx[i]) +
                                                                  " out of [0, n_ctx)");
        a.idx = idx;
        a.offsets = offsets;
        tactic::cuda::attention(a);
#else
        no_cuda();
#endif
    });
}

TACTIC_API tactic_status tactic_cuda_prefill_attention(const float *q, int32_t n_tokens, int32_t n_head,
                                                       int32_t n_head_kv, int32_t head_dim, const uint16_t *k,
                                                       const uint16_t *v, int32_t n_ctx, int32_t pos0,
                                                       int32_t window, float *out) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(q && k && v && out, "prefill_attention: q, k, v and out must not be NULL");
        TACTIC_REQUIRE_ARG(n_head > 0 && n_head_kv > 0 && n_head % n_head_kv == 0,
                           "prefill_attention: n_head must be a positive multiple of n_head_kv");
        TACTIC_CHECK(head_dim == 64 || head_dim == 128 || head_dim == 256, TACTIC_ERR_UNSUPPORTED,
                     "prefill_attention: head_dim must be 64, 128 or 256");
        TACTIC_REQUIRE_ARG(n_tokens > 0 && pos0 >= 0 && window >= 0 && n_ctx > 0 && n_ctx <= (1 << 28) &&
                               int64_t(pos0) + n_tokens <= n_ctx,
                           "prefill_attention: need n_tokens > 0, pos0 >= 0, window >= 0, pos0 + n_tokens <= n_ctx");
        TACTIC_REQUIRE_ARG(int64_t(n_tokens) * n_head <= (int64_t(1) << 30), "prefill_attention: too many query rows");
#ifdef TACTIC_HAVE_CUDA
        tactic::cuda::PrefillAttnHost a;
        a.q = q;
        a.n_tokens = n_tokens;
        a.n_head = n_head;
        a.n_head_kv = n_head_kv;
        a.head_dim = head_dim;
        a.k = k;
        a.v = v;
        a.n_ctx = n_ctx;
        a.pos0 = pos0;
        a.window = window;
        a.out = out;
        tactic::cuda::prefill_attention(a);
#else
        no_cuda();
#endif
    });
}

TACTIC_API tactic_status tactic_cuda_tactic_step(const tactic_cuda_tactic_shape *shape, const float *q,
                                                 const uint16_t *k, const uint16_t *v, const int32_t *order,
                                                 const int32_t *offsets, const int32_t *n_clusters,
                                                 const float *centroids, float *out, int32_t *selected,
                                                 int32_t *n_selected, double *stage_ms) {
    return guard([&] {
#ifdef TACTIC_HAVE_CUDA
        TACTIC_REQUIRE_ARG(shape && q && k && v && offsets && n_clusters && out && selected && n_selected,
                           "tactic_step: only order, centroids and stage_ms may be NULL");
        const tactic_cuda_tactic_shape &s = *shape;
        TACTIC_REQUIRE_ARG(s.n_head > 0 && s.n_head_kv > 0 && s.n_head % s.n_head_kv == 0,
                           "tactic_step: n_head must be a positive multiple of n_head_kv");
        TACTIC_CHECK(s.head_dim == 64 || s.head_dim == 128 || s.head_dim == 256, TACTIC_ERR_UNSUPPORTED,
                     "tactic_step: head_dim must be 64, 128 or 256");
        TACTIC_CHECK(s.n_head / s.n_head_kv <= 8, TACTIC_ERR_UNSUPPORTED,
                     "tactic_step: at most 8 query heads per KV head");
        TACTIC_REQUIRE_ARG(s.n_tokens >= 1 && s.n_tokens <= s.n_ctx && s.n_ctx <= (1 << 28),
                           "tactic_step: need 1 <= n_tokens <= n_ctx");
        TACTIC_REQUIRE_ARG(0 <= s.c_begin && s.c_begin <= s.c_end && s.c_end <= s.n_tokens,
                           "tactic_step: need 0 <= c_begin <= c_end <= n_tokens");
        TACTIC_REQUIRE_ARG(s.max_clusters >= 0 && s.max_clusters <= (1 << 24), "tactic_step: bad max_clusters");
        TACTIC_REQUIRE_ARG(s.force_fraction >= 0.f && s.force_fraction <= 1.f,
                           "tactic_step: force_fraction must be in [0, 1]");
        TACTIC_REQUIRE_ARG(s.force_fraction > 0.f || (s.p > 0.f && s.p <= 1.f), "tactic_step: p must be in (0, 1]");
        const int len = s.c_end - s.c_begin;
        TACTIC_REQUIRE_ARG(len == 0 || (order && centroids), "tactic_step: order and centroids must not be NULL");
        std::vector<uint8_t> seen(static_cast<size_t>(len), 0);
        for (int g = 0; g < s.n_head_kv; g++) {
            const int C = n_clusters[g];
            const int32_t *off = offsets + size_t(g) * (s.max_clusters + 1);
            TACTIC_REQUIRE_ARG(C >= 0 && C <= s.max_clusters, "tactic_step: n_clusters out of [0, max_clusters]");
            TACTIC_REQUIRE_ARG(off[0] == 0 && off[C] == len, "tactic_step: offsets must run from 0 to c_end - c_begin");
            for (int c = 0; c < C; c++)
                TACTIC_REQUIRE_ARG(off[c] <= off[c + 1], "tactic_step: offsets must be non-decreasing");
            std::fill(seen.begin(), seen.end(), 0);
            for (int o = 0; o < len; o++) {
                const int32_t t = order[size_t(g) * len + o];
                TACTIC_REQUIRE_ARG(t >= s.c_begin && t < s.c_end && !seen[size_t(t - s.c_begin)],
                                   "tactic_step: order must be a permutation of [c_begin, c_end)");
                seen[size_t(t - s.c_begin)] = 1;
            }
        }
        tactic::cuda::TacticStepHost a;
        a.q = q;
        a.n_head = s.n_head;
        a.n_head_kv = s.n_head_kv;
        a.head_dim = s.head_dim;
        a.n_ctx = s.n_ctx;
        a.k = k;
        a.v = v;
        a.n_tokens = s.n_tokens;
        a.c_begin = s.c_begin;
        a.c_end = s.c_end;
        a.cmax = s.max_clusters;
        a.order = order;
        a.offsets = offsets;
        a.n_clusters = n_clusters;
        a.centroids = centroids;
        a.force_fraction = s.force_fraction;
        a.p = s.p;
        a.scale = s.scale;
        a.out = out;
        a.selected = selected;
        a.n_selected = n_selected;
        a.stage_ms = stage_ms;
        tactic::cuda::tactic_step_host(a);
#else
        (void)shape, (void)q, (void)k, (void)v, (void)order, (void)offsets, (void)n_clusters, (void)centroids;
        (void)out, (void)selected, (void)n_selected, (void)stage_ms;
        no_cuda();
#endif
    });
}

}  // extern "C"
