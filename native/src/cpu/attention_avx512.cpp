// AVX-512 attention (its functions compiled for AVX-512: simd_target.h; called only after cpu_has_avx512_vnni()).
// A block of query rows (several tokens x the query heads of one KV group, or one
// decode token's heads) goes through one chunk of keys together, 64 keys at a time, so
// each key and value row is read and widened from f16 once per block instead of once
// per token. Two lane layouts:
//   - rows in the lanes (a prefill block): S^T[key][row] = K·Q^T with the rows in zmm
//     lanes (Q transposed once per block), the online softmax vectorised over the rows
//     (masking each row to its own causal key range), then O[row][:] += P·V;
//   - keys in the lanes (at most kFewRows rows: a decode token's query heads, which
//     would fill 4 of 16 lanes above): 4 rows x 4 keys a vector for the scores (K
//     transposed a tile at a time), the online softmax row by row over 16 keys a vector,
//     the same P·V; K and V read in place, prefetched one and two tiles ahead.
// Both compute every score as the same FMA chain over d, and every softmax step as the
// same operations on the same values in the same order, so a row's numbers do not
// depend on the layout or on the other rows; tiles start at the chunk's first key:
// decode (one token, its chunks in parallel) and prefill (a block of tokens, the chunks
// in turn) give a token the same bytes (attention.cpp merges the chunks;
// tests/test_attention_cpu.py holds the layouts equal, tests/test_batch_independence.py
// the model's logits).
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "key_map.h"
#include "weight_memory.h"

#include "../simd_target.h"

TACTIC_TARGET_AVX512_BEGIN  // (this file's functions; not the templates of the headers above)
#include "../simd_avx512.h"

namespace tactic {

namespace {

constexpr int kKeys = 64;  // keys per tile
constexpr int kRows = 64;  // query rows per block at most

// St[i][0 .. 16·NV) = Σ_d Kf[i][d]·Qt[d][..] for 4 keys i.
template <int NV>
void scores4(const float *Qt, int Rp, const float *Kf, int D, float *St) {
    __m512 acc[4][NV];
    for (int i = 0; i < 4; i++)
        for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
    for (int d = 0; d < D; d++) {
        __m512 qv[NV];
        for (int v = 0; v < NV; v++) qv[v] = _mm512_loadu_ps(Qt + size_t(d) * Rp + 16 * v);
        for (int i = 0; i < 4; i++) {
            const __m512 kb = _mm512_set1_ps(Kf[size_t(i) * D + d]);
            for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(kb, qv[v], acc[i][v]);
        }
    }
    for (int i = 0; i < 4; i++)
        for (int v = 0; v < NV; v++) _mm512_storeu_ps(St + size_t(i) * Rp + 16 * v, acc[i][v]);
}

// Of[r][d0 .. d0+64) = Of·scale[r] + Σ_j P[j][r]·Vf[j][d0 ..] for 4 rows r0..r0+3
// (first: Of holds nothing yet).
void pv4(const float *P, int Rp, int r0, int kn, const float *Vf, int D, int d0, float *Of, const float *scale,
         bool first) {
    __m512 acc[4][4];
    for (int i = 0; i < 4; i++) {
        const __m512 s = _mm512_set1_ps(scale[r0 + i]);
        for (int v = 0; v < 4; v++)
            acc[i][v] = first ? _mm512_setzero_ps()
                              : _mm512_mul_ps(s, _mm512_loadu_ps(Of + size_t(r0 + i) * D + d0 + 16 * v));
    }
    for (int j = 0; j < kn; j++) {
        __m512 vv[4];
        for (int v = 0; v < 4; v++) vv[v] = _mm512_loadu_ps(Vf + size_t(j) * D + d0 + 16 * v);
        for (int i = 0; i < 4; i++) {
            const __m512 p = _mm512_set1_ps(P[size_t(j) * Rp + r0 + i]);
            for (int v = 0; v < 4; v++) acc[i][v] = _mm512_fmadd_ps(p, vv[v], acc[i][v]);
        }
    }
    for (int i = 0; i < 4; i++)
        for (int v = 0; v < 4; v++) _mm512_storeu_ps(Of + size_t(r0 + i) * D + d0 + 16 * v, acc[i][v]);
}

// pv4 with the weights row by row (P[r][j], rows kKeys apart) and the values read as f16
// rows (V[j], zero rows for masked keys), widened on the fly: the same products in the
// same order, without an f32 copy of the tile.
void pv4_f16(const float *P, int r0, int kn, const uint16_t *const *V, int D, int d0, float *Of,
             const float *scale, bool first) {
    __m512 acc[4][4];
    for (int i = 0; i < 4; i++) {
        const __m512 s = _mm512_set1_ps(scale[r0 + i]);
        for (int v = 0; v < 4; v++)
            acc[i][v] = first ? _mm512_setzero_ps()
                              : _mm512_mul_ps(s, _mm512_loadu_ps(Of + size_t(r0 + i) * D + d0 + 16 * v));
    }
    for (int j = 0; j < kn; j++) {
        __m512 vv[4];
        for (int v = 0; v < 4; v++)
            vv[v] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(V[j] + d0 + 16 * v)));
        for (int i = 0; i < 4; i++) {
            const __m512 p = _mm512_set1_ps(P[size_t(r0 + i) * kKeys + j]);
            for (int v = 0; v < 4; v++) acc[i][v] = _mm512_fmadd_ps(p, vv[v], acc[i][v]);
        }
    }
    for (int i = 0; i < 4; i++)
        for (int v = 0; v < 4; v++) _mm512_storeu_ps(Of + size_t(r0 + i) * D + d0 + 16 * v, acc[i][v]);
}

// The keys of positions T .. T+kn4 as f32 rows: positions in [a, b) from their cache
// rows (map), the others zero (masked by the caller).
void widen(const uint16_t *src, const KeyMap &map, int T, int a, int b, int kn4, int D, float *dst) {
    for (int j = 0; j < kn4; j++) {
        float *o = dst + size_t(j) * D;
        const int p = T + j;
        if (p < a || p >= b) {
            std::fill_n(o, D, 0.f);
            continue;
        }
        const uint16_t *s = src + size_t(map.row(p)) * D;
        for (int d = 0; d < D; d += 16)
            _mm512_storeu_ps(o + d, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(s + d))));
    }
}

// ---- Few rows (a decode token's query heads): keys in the lanes ----
// With 4 rows or so, rows in lanes would leave most of each K·q product idle. Here a
// vector holds 4 rows x 4 keys (lane 4r + i: row r, key i), so each FMA does 16 useful
// products. Every score is still the chain acc = fma(K[key][d], q[row][d], acc) over d
// ascending from zero, the chain scores4 runs, so both layouts give the same bytes.
constexpr int kQuads = 8;
// Rows at most this many take the keys-in-lanes scores (measured: bench_attention_kernels.py).
constexpr int kFewRows = 8;  // key quads (32 keys) scored together: 8 independent chains per row group

// Rows r0 .. r0+3 of q repeated for the lanes: Qr[d][4r + i] = q[r0 + r][d].
void repeat_rows(const float *Qt, int Rp, int r0, int D, float *Qr) {
    const __m512i rep = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    for (int d = 0; d < D; d++)
        _mm512_storeu_ps(Qr + size_t(d) * 16,
                         _mm512_permutexvar_ps(rep, _mm512_broadcast_f32x4(_mm_loadu_ps(Qt + size_t(d) * Rp + r0))));
}

// Four keys' f16 values d0 .. d0+15 (rows k[0..3]) transposed: T[m·16 + 4l + i] = key
// i's element d0 + 4l + m (each 128-bit lane of the four vectors holds 4 d's x 4 keys).
inline void transpose_quad(const uint16_t *const *k, int d0, float *T) {
    const __m512 a = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(k[0] + d0)));
    const __m512 b = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(k[1] + d0)));
    const __m512 c = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(k[2] + d0)));
    const __m512 e = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(k[3] + d0)));
    const __m512 t0 = _mm512_unpacklo_ps(a, b), t1 = _mm512_unpackhi_ps(a, b);
    const __m512 t2 = _mm512_unpacklo_ps(c, e), t3 = _mm512_unpackhi_ps(c, e);
    const __m512d u0 = _mm512_castps_pd(t0), u1 = _mm512_castps_pd(t1);
    const __m512d u2 = _mm512_castps_pd(t2), u3 = _mm512_castps_pd(t3);
    _mm512_storeu_ps(T + 0, _mm512_castpd_ps(_mm512_unpacklo_pd(u0, u2)));
    _mm512_storeu_ps(T + 16, _mm512_castpd_ps(_mm512_unpackhi_pd(u0, u2)));
    _mm512_storeu_ps(T + 32, _mm512_castpd_ps(_mm512_unpacklo_pd(u1, u3)));
    _mm512_storeu_ps(T + 48, _mm512_castpd_ps(_mm512_unpackhi_pd(u1, u3)));
}

// Sc[4g + r][j] (rows kKeys apart) = the scores of the kQuads key quads listed in k (4
// row pointers each) for the row groups g < NG of Qr (rows 4g .. 4g+3 in Qr + g·D·16).
// Meanwhile the kKeys rows listed in pf (f16 rows of D) are prefetched, spread over
// the D/16 steps: the next keys and values stream in while these are scored.
template <int NG>
void scores_few(const float *Qr, const uint16_t *const *k, int D, float *Sc, const uint16_t *const *pf, bool to_l2) {
    alignas(64) float T[kQuads * 64];
    const int pf_rows = std::max(1, kKeys * 16 / D), pf_lines = D / 32;  // a step's rows; 64-byte lines a row
    __m512 acc[NG][kQuads];
    for (int g = 0; g < NG; g++)
        for (int i = 0; i < kQuads; i++) acc[g][i] = _mm512_setzero_ps();
    for (int d0 = 0; d0 < D; d0 += 16) {
        for (int r = d0 / 16 * pf_rows; r < std::min(kKeys, (d0 / 16 + 1) * pf_rows); r++)
            for (int l = 0; l < pf_lines; l++) {
                const char *line = reinterpret_cast<const char *>(pf[r] + 32 * l);
                if (to_l2) _mm_prefetch(line, _MM_HINT_T1);
                else _mm_prefetch(line, _MM_HINT_T0);
            }
#pragma GCC unroll 8
        for (int i = 0; i < kQuads; i++) transpose_quad(k + 4 * i, d0, T + 64 * i);
#pragma GCC unroll 16
        for (int dd = 0; dd < 16; dd++) {
            const int off = 16 * (dd & 3) + 4 * (dd >> 2);
#pragma GCC unroll 2
            for (int g = 0; g < NG; g++) {
                const __m512 qv = _mm512_loadu_ps(Qr + size_t(g) * D * 16 + size_t(d0 + dd) * 16);
#pragma GCC unroll 8
                for (int i = 0; i < kQuads; i++)
                    acc[g][i] = _mm512_fmadd_ps(_mm512_broadcast_f32x4(_mm_load_ps(T + 64 * i + off)), qv, acc[g][i]);
            }
        }
    }
    // 128-bit lane r of quad i's vector: row 4g + r's scores of keys 4i .. 4i+3
    for (int g = 0; g < NG; g++)
        for (int i = 0; i < kQuads; i++) {
            float *o = Sc + size_t(4 * g) * kKeys + 4 * i;
            _mm_storeu_ps(o, _mm512_castps512_ps128(acc[g][i]));
            _mm_storeu_ps(o + kKeys, _mm512_extractf32x4_ps(acc[g][i], 1));
            _mm_storeu_ps(o + 2 * kKeys, _mm512_extractf32x4_ps(acc[g][i], 2));
            _mm_storeu_ps(o + 3 * kKeys, _mm512_extractf32x4_ps(acc[g][i], 3));
        }
}

struct Buffers {
    std::vector<float> qt, qr, kf, vf, st, sc, of, m, l, scale;
    std::vector<int32_t> lo, hi;
    std::vector<const uint16_t *> krow, knext, kfar, vrow, vnext;
    std::vector<uint16_t> zero;
};

// The online softmax of a tile's scores St[j][row] (keys j0 + j, j < kn; rows in lanes,
// 16 a vector, each masked to its [lo, hi)): St becomes the f16-rounded weights (zero
// for j in [kn, kn4)), m and l advance, scale = the factor on the rows' earlier output.
void online_softmax(Buffers &b, int NV, int j0, int kn, int kn4) {
    const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    const int Rp = 16 * NV;
    for (int v = 0; v < NV; v++) {
        const __m512i lov = _mm512_loadu_si512(b.lo.data() + 16 * v), hiv = _mm512_loadu_si512(b.hi.data() + 16 * v);
        __m512 mt = ninf;
        for (int j = 0; j < kn; j++) {
            const __m512i jj = _mm512_set1_epi32(j0 + j);
            const __mmask16 ok = _mm512_cmple_epi32_mask(lov, jj) & _mm512_cmplt_epi32_mask(jj, hiv);
            float *s = b.st.data() + size_t(j) * Rp + 16 * v;
            const __m512 x = _mm512_mask_mov_ps(ninf, ok, _mm512_loadu_ps(s));
            _mm512_storeu_ps(s, x);
            mt = _mm512_max_ps(mt, x);
        }
        const __m512 m_old = _mm512_loadu_ps(b.m.data() + 16 * v), m_new = _mm512_max_ps(m_old, mt);
        const __mmask16 live = _mm512_cmp_ps_mask(m_new, ninf, _CMP_NEQ_OQ);
        const __m512 m_sub = _mm512_maskz_mov_ps(live, m_new);
        // m_old = -inf: the factor is 0 (nothing accumulated yet)
        const __mmask16 had = _mm512_cmp_ps_mask(m_old, ninf, _CMP_NEQ_OQ);
        const __m512 scale_old = _mm512_maskz_mov_ps(had, simd512::exp(_mm512_sub_ps(m_old, m_sub)));
        __m512 sum = _mm512_setzero_ps();
        for (int j = 0; j < kn; j++) {
            float *s = b.st.data() + size_t(j) * Rp + 16 * v;
            const __m512 x = _mm512_loadu_ps(s);
            const __mmask16 ok = _mm512_cmp_ps_mask(x, ninf, _CMP_NEQ_OQ);
            const __m512 p = _mm512_maskz_mov_ps(ok, simd512::exp(_mm512_sub_ps(x, m_sub)));
            sum = _mm512_add_ps(sum, p);
            // the weights V is multiplied by are rounded to f16, as in attend_rows
            _mm512_storeu_ps(s, simd512::round_f16(p));
        }
        for (int j = kn; j < kn4; j++) _mm512_storeu_ps(b.st.data() + size_t(j) * Rp + 16 * v, _mm512_setzero_ps());
        const __m512 l_old = _mm512_loadu_ps(b.l.data() + 16 * v);
        _mm512_storeu_ps(b.l.data() + 16 * v, _mm512_fmadd_ps(l_old, scale_old, sum));
        _mm512_storeu_ps(b.m.data() + 16 * v, m_new);
        // rows that had nothing keep their (zero) accumulators: any factor will do
        _mm512_storeu_ps(b.scale.data() + 16 * v, _mm512_mask_mov_ps(_mm512_set1_ps(1.f), had, scale_old));
    }
}

// online_softmax for a few rows with the keys in the lanes: Sc[r][j] (rows kKeys apart)
// holds row r's scores of keys j0 + j, j < kn4; rows r < R become their f16-rounded
// weights. Each row's numbers are online_softmax's: the same masking, the same max, the
// same exp of the same differences, the weights summed one by one in key order (the
// masked ones add +0, as there), and the same vector code on m and l.
void online_softmax_few(Buffers &b, int R, int j0, int kn4, float *Sc) {
    const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const int nv = (kn4 + 15) / 16;
    alignas(64) float mt[16], sum[16], msub[16], p[16];
    std::fill_n(mt, 16, -std::numeric_limits<float>::infinity());
    std::fill_n(sum, 16, 0.f);
    for (int r = 0; r < R; r++) {
        // row r's keys in this tile: [a, e) (its range already cut to the call's)
        const __m512i a = _mm512_set1_epi32(b.lo[size_t(r)] - j0), e = _mm512_set1_epi32(b.hi[size_t(r)] - j0);
        __m512 mx = ninf;
        for (int v = 0; v < nv; v++) {
            const __m512i jj = _mm512_add_epi32(iota, _mm512_set1_epi32(16 * v));
            const __mmask16 ok = _mm512_cmple_epi32_mask(a, jj) & _mm512_cmplt_epi32_mask(jj, e);
            float *x = Sc + size_t(r) * kKeys + 16 * v;
            const __m512 xm = _mm512_mask_mov_ps(ninf, ok, _mm512_loadu_ps(x));
            _mm512_storeu_ps(x, xm);
            mx = _mm512_max_ps(mx, xm);
        }
        mt[r] = _mm512_reduce_max_ps(mx);
    }
    const __m512 m_old = _mm512_loadu_ps(b.m.data()), m_new = _mm512_max_ps(m_old, _mm512_load_ps(mt));
    const __mmask16 live = _mm512_cmp_ps_mask(m_new, ninf, _CMP_NEQ_OQ);
    const __m512 m_sub = _mm512_maskz_mov_ps(live, m_new);
    const __mmask16 had = _mm512_cmp_ps_mask(m_old, ninf, _CMP_NEQ_OQ);
    const __m512 scale_old = _mm512_maskz_mov_ps(had, simd512::exp(_mm512_sub_ps(m_old, m_sub)));
    _mm512_store_ps(msub, m_sub);
    for (int r = 0; r < R; r++) {
        const __m512 ms = _mm512_set1_ps(msub[r]);
        float s = 0.f;
        for (int v = 0; v < nv; v++) {
            float *x = Sc + size_t(r) * kKeys + 16 * v;
            const __m512 xv = _mm512_loadu_ps(x);
            const __mmask16 ok = _mm512_cmp_ps_mask(xv, ninf, _CMP_NEQ_OQ);
            const __m512 pv = _mm512_maskz_mov_ps(ok, simd512::exp(_mm512_sub_ps(xv, ms)));
            _mm512_store_ps(p, pv);
            _mm512_storeu_ps(x, simd512::round_f16(pv));
            for (int k = 0; k < 16; k++) s += p[k];
        }
        sum[r] = s;
    }
    const __m512 l_old = _mm512_loadu_ps(b.l.data());
    _mm512_storeu_ps(b.l.data(), _mm512_fmadd_ps(l_old, scale_old, _mm512_load_ps(sum)));
    _mm512_storeu_ps(b.m.data(), m_new);
    _mm512_storeu_ps(b.scale.data(), _mm512_mask_mov_ps(_mm512_set1_ps(1.f), had, scale_old));
}

}  // namespace

// s[r] = f16-rounded e^(s[r] − mx) for r < n; returns the sum of the unrounded values.
float softmax_tile_avx512(float *s, int n, float mx) {
    const __m512 m = _mm512_set1_ps(mx);
    __m512 sum = _mm512_setzero_ps();
    int r = 0;
    for (; r + 16 <= n; r += 16) {
        const __m512 p = simd512::exp(_mm512_sub_ps(_mm512_loadu_ps(s + r), m));
        sum = _mm512_add_ps(sum, p);
        _mm512_storeu_ps(s + r, simd512::round_f16(p));
    }
    if (r < n) {
        const __mmask16 k = __mmask16((1u << (n - r)) - 1);
        const __m512 p = _mm512_maskz_mov_ps(k, simd512::exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + r), m)));
        sum = _mm512_add_ps(sum, p);
        _mm512_mask_storeu_ps(s + r, k, simd512::round_f16(p));
    }
    return _mm512_reduce_add_ps(sum);
}

bool attend_block_avx512_supports(int rows, int D, int layout) {
    return rows <= (layout == 2 ? kFewRows : kRows) && D % 64 == 0;
}

void attend_block_avx512(const float *q, int64_t q_stride, int nt, int group, int D, const uint16_t *K,
                         const uint16_t *V, const KeyMap &map, const int *lo, const int *hi, int j_begin, int j_end,
                         float *m_out, float *l_out, float *acc_out, int layout) {
    if (j_end <= j_begin) return;  // no keys: the caller's reset state stands
    const int R = nt * group, NV = (R + 15) / 16, Rp = 16 * NV;
    thread_local Buffers b;
    b.qt.resize(size_t(D) * Rp);
    b.kf.resize(size_t(kKeys) * D);
    b.vf.resize(size_t(kKeys) * D);
    b.st.resize(size_t(kKeys) * Rp);
    b.of.resize(size_t(Rp) * D);  // written by the first tile
    b.m.assign(size_t(Rp), -std::numeric_limits<float>::infinity());
    b.l.assign(size_t(Rp), 0.f);
    b.scale.assign(size_t(Rp), 0.f);
    b.lo.assign(size_t(Rp), 0);
    b.hi.assign(size_t(Rp), 0);  // padding rows: an empty range
    std::fill(b.qt.begin(), b.qt.end(), 0.f);  // padding rows stay zero
    for (int r = 0; r < R; r++) {
        const float *qr = q + (r / group) * q_stride + size_t(r % group) * D;
        for (int d = 0; d < D; d++) b.qt[size_t(d) * Rp + r] = qr[d];
        b.lo[size_t(r)] = std::max(lo[r / group], j_begin);
        b.hi[size_t(r)] = std::min(hi[r / group], j_end);
    }
    const int jlo = j_begin, jhi = j_end;
    // Tiles of 64 positions from a multiple of 64, whatever the range's start: a row's
    // keys fall into the same tiles in every call that covers them (keys outside its
    // range are masked, which leaves its numbers untouched).
    const int t_first = jlo - ((jlo % kKeys) + kKeys) % kKeys;
    const bool few = layout == 2 || (layout == 0 && R <= kFewRows);
    if (few) {
        // Keys in the lanes; K and V read as f16 rows in place, prefetched ahead (values a
        // tile, keys two: measured faster from memory than one tile ahead, job 37).
        const int NG = (R + 3) / 4;
        b.qr.resize(size_t(NG) * D * 16);
        for (int g = 0; g < NG; g++) repeat_rows(b.qt.data(), Rp, 4 * g, D, b.qr.data() + size_t(g) * D * 16);
        b.zero.assign(size_t(D), 0);
        b.sc.assign(size_t(4 * NG) * kKeys, 0.f);  // scores / weights, row by row
        for (auto *v : {&b.krow, &b.knext, &b.kfar, &b.vrow, &b.vnext}) v->resize(kKeys);
        // the rows of tile j0's keys; masked ones (and a short tile's padding) read zeros
        auto rows = [&](const uint16_t *src, int j0, std::vector<const uint16_t *> &out) {
            for (int j = 0; j < kKeys; j++) {
                const int p = j0 + j;
                out[size_t(j)] = p < jlo || p >= jhi ? b.zero.data() : src + size_t(map.row(p)) * D;
            }
        };
        rows(K, t_first, b.knext), rows(K, t_first + kKeys, b.kfar), rows(V, t_first, b.vnext);
        // the next tiles (64 KB at D = 256) would not fit in L1 beside this one's
        const bool to_l2 = decode_streaming().attn_prefetch_l2;
        for (int j0 = t_first; j0 < jhi; j0 += kKeys) {
            const int kn = std::min(kKeys, jhi - j0), kn4 = (kn + 3) / 4 * 4;
            std::swap(b.krow, b.knext), std::swap(b.knext, b.kfar), std::swap(b.vrow, b.vnext);
            rows(K, j0 + 2 * kKeys, b.kfar), rows(V, j0 + kKeys, b.vnext);
            for (int j = 0; j < kn4; j += 4 * kQuads) {
                // the first half fetches the next tile's values, the second the keys of the one after
                const uint16_t *const *pf = j == 0 ? b.vnext.data() : b.kfar.data();
                if (NG == 1)
                    scores_few<1>(b.qr.data(), b.krow.data() + j, D, b.sc.data() + j, pf, to_l2);
                else
                    scores_few<2>(b.qr.data(), b.krow.data() + j, D, b.sc.data() + j, pf, to_l2);
            }
            online_softmax_few(b, R, j0, kn4, b.sc.data());
            for (int r0 = 0; r0 < R; r0 += 4)
                for (int d0 = 0; d0 < D; d0 += 64)
                    pv4_f16(b.sc.data(), r0, kn4, b.vrow.data(), D, d0, b.of.data(), b.scale.data(), j0 == t_first);
        }
    } else {
        for (int j0 = t_first; j0 < jhi; j0 += kKeys) {
            const int kn = std::min(kKeys, jhi - j0), kn4 = (kn + 3) / 4 * 4;
            widen(K, map, j0, jlo, jhi, kn4, D, b.kf.data());
            widen(V, map, j0, jlo, jhi, kn4, D, b.vf.data());
            for (int j = 0; j < kn4; j += 4) {
                float *st = b.st.data() + size_t(j) * Rp;
                const float *kf = b.kf.data() + size_t(j) * D;
                switch (NV) {
                    case 1: scores4<1>(b.qt.data(), Rp, kf, D, st); break;
                    case 2: scores4<2>(b.qt.data(), Rp, kf, D, st); break;
                    case 3: scores4<3>(b.qt.data(), Rp, kf, D, st); break;
                    default: scores4<4>(b.qt.data(), Rp, kf, D, st); break;
                }
            }
            online_softmax(b, NV, j0, kn, kn4);
            for (int r0 = 0; r0 < R; r0 += 4)
                for (int d0 = 0; d0 < D; d0 += 64)
                    pv4(b.st.data(), Rp, r0, kn4, b.vf.data(), D, d0, b.of.data(), b.scale.data(), j0 == t_first);
        }
    }
    std::copy_n(b.m.data(), R, m_out);
    std::copy_n(b.l.data(), R, l_out);
    std::copy_n(b.of.data(), size_t(R) * D, acc_out);
}

}  // namespace tactic

TACTIC_TARGET_END
