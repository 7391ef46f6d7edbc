// AVX-512 twin of Tactic's candidate scoring (its functions compiled for AVX-512: simd_target.h; called only
// after the run-time check in kernels.cpp): q·k of g query heads against a run of keys,
// the keys in the lanes (4 heads x 4 keys a vector, K transposed 8 keys at a time), so a
// GQA group of 4 heads fills every lane instead of a quarter of them.
//
// Each score is the number avx2::dots_group_f16 computes: 8 FMA chains over the
// dimensions d = j, j + 8, j + 16, ... (j < 8), in ascending order, summed as its hsum
// sums them, ((c0 + c4) + (c2 + c6)) + ((c1 + c5) + (c3 + c7)). So the bounded
// selector scores, and selects, exactly what it did with the AVX2 kernel
// (tests/test_tactic_kernels.py holds the two to the same bytes).
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels.h"

#include "../simd_target.h"

TACTIC_TARGET_AVX512_BEGIN  // (this file's functions; not the templates of the headers above)

namespace tactic {
namespace tk {
namespace avx512 {

namespace {

// The 8 keys k[0..8) as f32, transposed in blocks of 16 dimensions: for d = 16b + 4l + m,
// T[64(2b + q) + 16m + 4l + i] = key 4q + i's element d.
void transpose8(const uint16_t *const *k, int D, float *T) {
    for (int d0 = 0; d0 < D; d0 += 16)
        for (int q = 0; q < 2; q++) {
            const __m512 a = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(k[4 * q] + d0)));
            const __m512 b = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(k[4 * q + 1] + d0)));
            const __m512 c = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(k[4 * q + 2] + d0)));
            const __m512 e = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(k[4 * q + 3] + d0)));
            const __m512d t0 = _mm512_castps_pd(_mm512_unpacklo_ps(a, b)), t1 = _mm512_castps_pd(_mm512_unpackhi_ps(a, b));
            const __m512d t2 = _mm512_castps_pd(_mm512_unpacklo_ps(c, e)), t3 = _mm512_castps_pd(_mm512_unpackhi_ps(c, e));
            // vector m, 128-bit lane l: the 4 keys at d0 + 4l + m
            float *o = T + size_t(d0 / 16 * 2 + q) * 64;
            _mm512_storeu_ps(o, _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2)));
            _mm512_storeu_ps(o + 16, _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2)));
            _mm512_storeu_ps(o + 32, _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3)));
            _mm512_storeu_ps(o + 48, _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3)));
        }
}

}  // namespace

void repeat_heads(const float *Q, int g, int D, float *qr) {
    // qr[rg][d][4r + i] = Q[4rg + r][d] (0 past the last head): a head's value in its 4 lanes
    const int NG = (g + 3) / 4;
    std::fill_n(qr, size_t(NG) * D * 16, 0.f);
    for (int h = 0; h < g; h++)
        for (int d = 0; d < D; d++)
            for (int i = 0; i < 4; i++) qr[(size_t(h / 4) * D + d) * 16 + 4 * (h % 4) + i] = Q[size_t(h) * D + d];
}

void dots_keys_f16(const float *qr, int g, const uint16_t *keys, int n, int D, float *out, int ostride) {
    const int NG = (g + 3) / 4;
    thread_local std::vector<float> T;
    thread_local std::vector<uint16_t> zero;
    if (zero.size() < size_t(D)) zero.assign(size_t(D), 0);
    T.resize(size_t(D) * 8);
    const __m512i tr = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    for (int o0 = 0; o0 < n; o0 += 8) {
        const uint16_t *k[8];
        for (int i = 0; i < 8; i++) k[i] = o0 + i < n ? keys + size_t(o0 + i) * D : zero.data();
        transpose8(k, D, T.data());
        for (int rg = 0; rg < NG; rg++) {
            const float *q = qr + size_t(rg) * D * 16;
            __m512 c[8][2];
            for (int j = 0; j < 8; j++) c[j][0] = c[j][1] = _mm512_setzero_ps();
            for (int d0 = 0; d0 < D; d0 += 16) {
                const float *t = T.data() + size_t(d0 / 16) * 128;
#pragma GCC unroll 16
                for (int dd = 0; dd < 16; dd++) {  // d = d0 + dd feeds chain dd % 8
                    const __m512 qv = _mm512_loadu_ps(q + size_t(d0 + dd) * 16);
                    const int off = 16 * (dd % 4) + 4 * (dd / 4);
                    c[dd % 8][0] = _mm512_fmadd_ps(_mm512_broadcast_f32x4(_mm_loadu_ps(t + off)), qv, c[dd % 8][0]);
                    c[dd % 8][1] = _mm512_fmadd_ps(_mm512_broadcast_f32x4(_mm_loadu_ps(t + 64 + off)), qv, c[dd % 8][1]);
                }
            }
            const int nh = g - 4 * rg < 4 ? g - 4 * rg : 4;
            const __mmask8 hm = __mmask8((1u << nh) - 1);
            for (int qd = 0; qd < 2; qd++) {
                const __m512 s = _mm512_add_ps(
                    _mm512_add_ps(_mm512_add_ps(c[0][qd], c[4][qd]), _mm512_add_ps(c[2][qd], c[6][qd])),
                    _mm512_add_ps(_mm512_add_ps(c[1][qd], c[5][qd]), _mm512_add_ps(c[3][qd], c[7][qd])));
                // lanes 4r + i -> 4i + r: key i's heads side by side
                const __m512 st = _mm512_permutexvar_ps(tr, s);
                for (int i = 0; i < 4; i++) {
                    const int o = o0 + 4 * qd + i;
                    if (o >= n) break;
                    const __m128 x = i == 0 ? _mm512_castps512_ps128(st)
                                     : i == 1 ? _mm512_extractf32x4_ps(st, 1)
                                     : i == 2 ? _mm512_extractf32x4_ps(st, 2)
                                              : _mm512_extractf32x4_ps(st, 3);
                    _mm_mask_storeu_ps(out + size_t(o) * ostride + 4 * rg, hm, x);
                }
            }
        }
    }
}

}  // namespace avx512
}  // namespace tk
}  // namespace tactic

TACTIC_TARGET_END
