#include "attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#if defined(TACTIC_X86)
#endif

#include "../common.h"
#include "../cpu_features.h"
#include "../quant.h"

namespace tactic {

// AVX2 versions, defined in attention_avx2.cpp (only called after a CPU check).
void qk_dots_avx2(const float *q, int n_q, int D, const uint16_t *K, const int32_t *rows, int n_rows, float *out,
                  int stride);
void pv_accumulate_avx2(float *acc, int n_q, int D, const float *w, int stride, const uint16_t *V,
                        const int32_t *rows, int n_rows);
// AVX-512 kernels, attention_avx512.cpp (only called after a CPU check).
float softmax_tile_avx512(float *s, int n, float mx);

namespace {
bool have_avx2() { return cpu_has_avx2_fma_f16c(); }
// Whether the AVX-512 block kernel computes a chunk of `rows` query rows.
bool use_block(int impl, int rows, int D) {
#if defined(TACTIC_X86)
    if (impl == 0) impl = kernel_impl();
    return impl == 3 && cpu_has_avx512_vnni() && attend_block_avx512_supports(rows, D);
#else
    (void)impl, (void)rows, (void)D;
    return false;
#endif
}
// Rows are either contiguous from `rows == nullptr` base, or listed.
inline const uint16_t *row_ptr(const uint16_t *base, const int32_t *rows, int r, int D) {
    return base + size_t(rows ? rows[r] : r) * size_t(D);
}
}  // namespace

void qk_dots(const float *q, int n_q, int D, const uint16_t *K, const int32_t *rows, int n_rows, float *out,
             int stride) {
#if defined(TACTIC_X86)
    if (have_avx2() && D % 8 == 0) return qk_dots_avx2(q, n_q, D, K, rows, n_rows, out, stride);
#endif
    std::vector<float> k(static_cast<size_t>(D), 0.f);
    for (int r = 0; r < n_rows; r++) {
        const uint16_t *kr = row_ptr(K, rows, r, D);
        for (int d = 0; d < D; d++) k[size_t(d)] = f16_to_f32(kr[d]);
        for (int h = 0; h < n_q; h++) {
            const float *qh = q + size_t(h) * D;
            float s = 0;
            for (int d = 0; d < D; d++) s += qh[d] * k[size_t(d)];
            out[size_t(h) * stride + r] = s;
        }
    }
}

void pv_accumulate(float *acc, int n_q, int D, const float *w, int stride, const uint16_t *V, const int32_t *rows,
                   int n_rows) {
#if defined(TACTIC_X86)
    if (have_avx2() && D % 8 == 0) return pv_accumulate_avx2(acc, n_q, D, w, stride, V, rows, n_rows);
#endif
    std::vector<float> v(static_cast<size_t>(D), 0.f);
    for (int r = 0; r < n_rows; r++) {
        const uint16_t *vr = row_ptr(V, rows, r, D);
        for (int d = 0; d < D; d++) v[size_t(d)] = f16_to_f32(vr[d]);
        for (int h = 0; h < n_q; h++) {
            const float wr = w[size_t(h) * stride + r];
            float *a = acc + size_t(h) * D;
            for (int d = 0; d < D; d++) a[d] += wr * v[size_t(d)];
        }
    }
}

void SoftmaxPartial::reset(int n_q, int D) {
    m.assign(size_t(n_q), -std::numeric_limits<float>::infinity());
    l.assign(size_t(n_q), 0.f);
    acc.assign(size_t(n_q) * size_t(D), 0.f);
}

void SoftmaxPartial::merge(const SoftmaxPartial &o, int n_q, int D) {
    for (int h = 0; h < n_q; h++) {
        if (o.l[size_t(h)] == 0.f) continue;
        const float mn = std::max(m[size_t(h)], o.m[size_t(h)]);
        const float a = std::exp(m[size_t(h)] - mn), b = std::exp(o.m[size_t(h)] - mn);
        l[size_t(h)] = l[size_t(h)] * a + o.l[size_t(h)] * b;
        float *x = acc.data() + size_t(h) * D;
        const float *y = o.acc.data() + size_t(h) * D;
        for (int d = 0; d < D; d++) x[d] = x[d] * a + y[d] * b;
        m[size_t(h)] = mn;
    }
}

void SoftmaxPartial::finish_row(int h, float *out, int D) const {
    const float inv = l[size_t(h)] > 0 ? 1.0f / l[size_t(h)] : 0.f;
    for (int d = 0; d < D; d++) out[d] = acc[size_t(h) * D + d] * inv;
}

void SoftmaxPartial::finish(float *out, int n_q, int D) const {
    for (int h = 0; h < n_q; h++) finish_row(h, out + size_t(h) * D, D);
}

void attend_rows(const float *q, int n_q, int D, const uint16_t *K, const uint16_t *V, const int32_t *idx, int j0,
                 int j1, SoftmaxPartial &part, std::vector<float> &scratch, int impl) {
    constexpr int kTile = 256;  // keys per tile: scores stay in L1
    if (impl == 0) impl = kernel_impl();
#if defined(TACTIC_X86)
    const bool avx512 = impl == 3 && cpu_has_avx512_vnni();
#else
    const bool avx512 = false;
#endif
    scratch.resize(size_t(n_q) * kTile);
    for (int t0 = j0; t0 < j1; t0 += kTile) {
        const int n = std::min(kTile, j1 - t0);
        const uint16_t *Kt = idx ? K : K + size_t(t0) * D;
        const uint16_t *Vt = idx ? V : V + size_t(t0) * D;
        const int32_t *rows = idx ? idx + t0 : nullptr;
        qk_dots(q, n_q, D, Kt, rows, n, scratch.data(), kTile);
        for (int h = 0; h < n_q; h++) {
            float *s = scratch.data() + size_t(h) * kTile;
            float mx = part.m[size_t(h)];
            for (int r = 0; r < n; r++) mx = std::max(mx, s[r]);
            const float scale_old = std::exp(part.m[size_t(h)] - mx);  // 0 when m was -inf
            float sum = 0;
#if defined(TACTIC_X86)
            if (avx512) {
                // exp, sum and the f16 rounding below in one vector pass
                sum = softmax_tile_avx512(s, n, mx);
            } else
#endif
            {
                for (int r = 0; r < n; r++) {
                    s[r] = std::exp(s[r] - mx);
                    sum += s[r];
                }
                // Weights rounded to f16 as llama.cpp's f16 V.P product rounds them: it
                // settles near-ties as llama.cpp does (measured on its greedy references).
                for (int r = 0; r < n; r++) s[r] = f16_to_f32(f32_to_f16(s[r]));
            }
            if (scale_old != 1.0f) {
                float *a = part.acc.data() + size_t(h) * D;
                for (int d = 0; d < D; d++) a[d] *= scale_old;
            }
            part.l[size_t(h)] = part.l[size_t(h)] * scale_old + sum;
            part.m[size_t(h)] = mx;
        }
        pv_accumulate(part.acc.data(), n_q, D, scratch.data(), kTile, Vt, rows, n);
    }
}

void attend_chunk(const float *q, int n_q, int D, const uint16_t *K, const uint16_t *V, const KeyMap &map, int p0,
                  int p1, SoftmaxPartial &part, std::vector<float> &scratch, int impl) {
    part.reset(n_q, D);
#if defined(TACTIC_X86)
    if (use_block(impl, n_q, D))
        return attend_block_avx512(q, 0, 1, n_q, D, K, V, map, &p0, &p1, p0, p1, part.m.data(), part.l.data(),
                                   part.acc.data());
#endif
    if (map.list) return attend_rows(q, n_q, D, K, V, map.list, p0 - map.base, p1 - map.base, part, scratch, impl);
    attend_rows(q, n_q, D, K, V, nullptr, p0 + map.base, p1 + map.base, part, scratch, impl);
}

namespace {
// The chunks of positions [lo, hi): the first one's index and how many (one, empty,
// when the range is).
int first_chunk(int lo) { return lo / kAttnChunk; }
int chunk_count(int lo, int hi) { return hi > lo ? (hi - 1) / kAttnChunk - lo / kAttnChunk + 1 : 1; }
int chunk_lo(int c, int lo) { return std::max(lo, c * kAttnChunk); }
int chunk_hi(int c, int hi) { return std::min(hi, (c + 1) * kAttnChunk); }
}  // namespace

void attention_chunked(const float *q, int n_q, int D, const uint16_t *K, const uint16_t *V, const KeyMap &map,
                       int lo, int hi, float *out, int impl) {
    thread_local SoftmaxPartial run, part;
    thread_local std::vector<float> scratch;
    const int c0 = first_chunk(lo), nc = chunk_count(lo, hi);
    for (int c = c0; c < c0 + nc; c++) {
        attend_chunk(q, n_q, D, K, V, map, chunk_lo(c, lo), chunk_hi(c, hi), c == c0 ? run : part, scratch, impl);
        if (c != c0) run.merge(part, n_q, D);
    }
    run.finish(out, n_q, D);
}

void attention_split(const float *q, int n_q, int D, const uint16_t *K, const uint16_t *V, const KeyMap &map, int lo,
                     int hi, float *out, ThreadPool &pool) {
    // Chunks of keys, each folded into its own partial softmax, merged at the end.
    const int c0 = first_chunk(lo), nc = chunk_count(lo, hi);
    std::vector<SoftmaxPartial> parts(static_cast<size_t>(nc));
    pool.parallel_for(nc, 1, [&](int64_t b, int64_t e) {
        thread_local std::vector<float> scratch;
        for (int64_t i = b; i < e; i++) {
            const int c = c0 + int(i);
            attend_chunk(q, n_q, D, K, V, map, chunk_lo(c, lo), chunk_hi(c, hi), parts[size_t(i)], scratch);
        }
    });
    for (int i = 1; i < nc; i++) parts[0].merge(parts[size_t(i)], n_q, D);
    parts[0].finish(out, n_q, D);
}

int query_block_tokens(int group) { return std::max(1, 64 / std::max(1, group)); }

void attend_query_block(const float *q, int64_t q_stride, int nt, int group, int D, const uint16_t *K,
                        const uint16_t *V, const KeyMap &map, const int *lo, const int *hi, float *out,
                        int64_t out_stride, int impl) {
    if (impl == 0) impl = kernel_impl();
    const int R = nt * group;
#if defined(TACTIC_X86)
    if (use_block(impl, R, D)) {
        // All tokens together, chunk by chunk as attention_chunked does for one: a row
        // with no keys in a chunk gets an empty partial there, which merging skips.
        thread_local SoftmaxPartial run, part;
        const int jlo = *std::min_element(lo, lo + nt), jhi = *std::max_element(hi, hi + nt);
        const int c0 = first_chunk(jlo), nc = chunk_count(jlo, jhi);
        for (int c = c0; c < c0 + nc; c++) {
            SoftmaxPartial &p = c == c0 ? run : part;
            p.reset(R, D);
            attend_block_avx512(q, q_stride, nt, group, D, K, V, map, lo, hi, chunk_lo(c, jlo), chunk_hi(c, jhi),
                                p.m.data(), p.l.data(), p.acc.data());
            if (c != c0) run.merge(part, R, D);
        }
        for (int r = 0; r < R; r++)  // SoftmaxPartial::finish, row by row into place
            run.finish_row(r, out + (r / group) * out_stride + size_t(r % group) * D, D);
        return;
    }
#endif
    for (int i = 0; i < nt; i++)
        attention_chunked(q + i * q_stride, group, D, K, V, map, lo[i], hi[i], out + i * out_stride, impl);
}

}  // namespace tactic
