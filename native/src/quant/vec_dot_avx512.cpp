// AVX-512 (F/BW/VL/DQ + VNNI) dot products of the quantized types (its functions compiled
// for those: simd_target.h; called only after cpu_has_avx512_vnni()). Each is held equal to its
// scalar twin by tests/test_quant.py.
//
// - K-quants (Q4_K, Q5_K, Q6_K): tiles of one weight row against up to 8 tokens, as in
//   vec_dot_avx2.cpp, 64 elements a zmm: the exact i16 products of vpmaddubsw are
//   multiply-accumulated with their sub-block scales by vpdpwssd (two instructions per
//   64 elements and token instead of six per 32).
// - Legacy types (Q4_0 ... Q5_1), prefill and decode: the regrouped tiles below (16
//   blocks side by side, one scale multiply per 16 blocks) on weights repacked at load;
//   in decode a row's short last group goes four rows a vector (tail_quad). Float rows
//   keep AVX2.
// Integer sums are exact, so results differ from the scalar path only by the order of
// the float additions.
#include <immintrin.h>

#include <cstring>

#include "../cpu/weight_memory.h"
#include "blocks.h"

#include "../simd_target.h"

TACTIC_TARGET_AVX512_BEGIN  // (this file's functions; not the templates of the headers above)

namespace tactic {
namespace q {

namespace {

constexpr int kKQuantTokens = 8;

inline float f16(const uint8_t *p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}
inline __m256i load256(const void *p) { return _mm256_loadu_si256(static_cast<const __m256i *>(p)); }
inline __m512i load512(const void *p) { return _mm512_loadu_si512(p); }
// Few tokens (decode): every weight byte streams from DRAM once, and the hardware
// prefetcher alone left a core at about half its read bandwidth (the Q8_0 output
// projection: 6 of 12.5 GB/s). The tiles ask for the bytes a distance past the rows
// they start on (past the tile's end too: those are the next chunk's), into L2.
// The distance and hint are decode_streaming()'s (cpu/weight_memory.h).
constexpr int kPrefetchMaxTokens = 4;
template <_mm_hint kHint>
inline void prefetch_lines(const uint8_t *p, size_t bytes) {
    for (size_t off = 0; off < bytes; off += 64) _mm_prefetch(reinterpret_cast<const char *>(p + off), kHint);
}
inline void prefetch_ahead(const uint8_t *rows, size_t bytes) {
    const DecodeStreaming &ds = decode_streaming();
    if (ds.prefetch_bytes == 0) return;
    const uint8_t *ahead = rows + ds.prefetch_bytes;
    switch (ds.prefetch_hint) {
        case 0: return prefetch_lines<_MM_HINT_T0>(ahead, bytes);
        case 1: return prefetch_lines<_MM_HINT_T1>(ahead, bytes);
        case 2: return prefetch_lines<_MM_HINT_T2>(ahead, bytes);
        default: return prefetch_lines<_MM_HINT_NTA>(ahead, bytes);
    }
}

inline float hsum512(__m512 v) {
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// ---- K-quants against Q8_K -----------------------------------------------------------------

// The 8 scales and 8 mins of a Q4_K/Q5_K super-block as bytes: sm[0..7], sm[8..15].
inline void k4_scales_mins(const uint8_t *s, uint8_t sm[16]) {
    uint32_t u[4];
    std::memcpy(u, s, 12);
    const uint32_t m1 = 0x3f3f3f3f, m2 = 0x0f0f0f0f, m3 = 0x03030303;
    u[3] = ((u[2] >> 4) & m2) | (((u[1] >> 6) & m3) << 4);
    const uint32_t mins_lo = u[1] & m1;
    u[1] = (u[2] & m2) | (((u[0] >> 6) & m3) << 4);
    u[2] = mins_lo;
    u[0] &= m1;
    std::memcpy(sm, u, 16);
}

// Q4_K / Q5_K: 64 elements (two sub-blocks) a zmm; Σ sc·q·q8 by maddubs + dpwssd,
// minus dmin·Σ mn·bsums.
template <bool kFive, int NT>
void row_k45(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *, float *res) {
    constexpr size_t kSize = kFive ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
    __m512 acc[NT];
    for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m128i dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    // i16 lanes 0..15 = scale 2c, 16..31 = scale 2c + 1, picked from the 8 scales widened
    // to i16 by one vpermw (one lane shuffle instead of two broadcasts and an insert)
    __m512i pick[4];
    for (int c = 0; c < 4; c++)
        pick[c] = _mm512_inserti64x4(_mm512_set1_epi16(short(2 * c)), _mm256_set1_epi16(short(2 * c + 1)), 1);
    for (int64_t i = 0; i < n / QK_K; i++, w += kSize) {
        alignas(16) uint8_t sm[16];
        k4_scales_mins(w + 4, sm);
        const __m512i sc16 = _mm512_cvtepu8_epi16(_mm256_zextsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i *>(sm))));
        const float d = f16(w), dmin = f16(w + 2);
        const uint8_t *qs = w + (kFive ? 48 : 16);
        const uint32_t *qh32 = nullptr;
        uint32_t qh[8];
        if (kFive) {
            std::memcpy(qh, w + 16, 32);
            qh32 = qh;
        }
        const __m256i mins =
            _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(sm + 8)), dup));
        __m512i sumi[NT];
        for (int t = 0; t < NT; t++) sumi[t] = _mm512_setzero_si512();
        for (int c = 0; c < 4; c++) {
            const __m256i q = load256(qs + 32 * c);
            __m256i lo = _mm256_and_si256(q, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            if (kFive) {
                // element j of sub-block 2c has its fifth bit at bit 2c of qh[j] (2c+1 for 2c+1);
                // nibble + 16 == nibble | 16
                const __m256i h = load256(qh32);
                const __mmask32 blo = _mm256_test_epi8_mask(h, _mm256_set1_epi8(char(1 << (2 * c))));
                const __mmask32 bhi = _mm256_test_epi8_mask(h, _mm256_set1_epi8(char(2 << (2 * c))));
                lo = _mm256_mask_add_epi8(lo, blo, lo, _mm256_set1_epi8(0x10));
                hi = _mm256_mask_add_epi8(hi, bhi, hi, _mm256_set1_epi8(0x10));
            }
            const __m512i qw = _mm512_inserti64x4(_mm512_zextsi256_si512(lo), hi, 1);
            const __m512i scv = _mm512_permutexvar_epi16(pick[c], sc16);
            for (int t = 0; t < NT; t++) {
                const int8_t *q8 = (reinterpret_cast<const BlockQ8_K *>(a + t * as) + i)->qs + 64 * c;
                sumi[t] = _mm512_dpwssd_epi32(sumi[t], _mm512_maddubs_epi16(qw, load512(q8)), scv);
            }
        }
        for (int t = 0; t < NT; t++) {
            const BlockQ8_K *y = reinterpret_cast<const BlockQ8_K *>(a + t * as) + i;
            const __m256i msum = _mm256_madd_epi16(mins, load256(y->bsums));
            acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * y->d), _mm512_cvtepi32_ps(sumi[t]), acc[t]);
            acc[t] = _mm512_fnmadd_ps(_mm512_set1_ps(dmin * y->d), _mm512_cvtepi32_ps(_mm512_zextsi256_si512(msum)),
                                      acc[t]);
        }
    }
    for (int t = 0; t < NT; t++) res[t] = hsum512(acc[t]);
}

// Q6_K: Σ sc·(q−32)·q8 = Σ sc·q·q8 − 32·Σ_g sc_g·bsums[g] (q unsigned 0..63).
// 128 elements of a half are ql[64h..64h+64) (low nibbles: elements 0..63, high
// nibbles: 64..127) with two bits each from qh[32h..32h+32).
template <int NT>
void row_q6k(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *, float *res) {
    __m512 acc[NT];
    for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(0x0F), m3 = _mm512_set1_epi8(0x30);
    // i16 lane l of a zmm covers elements 2l, 2l+1: scale index l / 8 within the zmm
    const __m512i sidx = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0,
                                          0, 0, 0, 0, 0, 0);
    for (int64_t i = 0; i < n / QK_K; i++, w += sizeof(BlockQ6_K)) {
        const BlockQ6_K *x = reinterpret_cast<const BlockQ6_K *>(w);
        const float d = f16(x->d);
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(x->scales)));
        const __m256i sc32 = _mm256_slli_epi16(sc16, 5);
        const __m512i scw = _mm512_zextsi256_si512(sc16);
        __m512i sumi[NT];
        for (int t = 0; t < NT; t++) {
            const BlockQ8_K *y = reinterpret_cast<const BlockQ8_K *>(a + t * as) + i;
            sumi[t] = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), _mm256_madd_epi16(sc32, load256(y->bsums))));
        }
        for (int h = 0; h < 2; h++) {
            const __m512i ql = load512(x->ql + 64 * h);
            const __m256i qh = load256(x->qh + 32 * h);
            // bits (0-1, 2-3) for elements 0..63 and (4-5, 6-7) for 64..127, moved to bits 4-5
            const __m512i h01 = _mm512_inserti64x4(_mm512_zextsi256_si512(_mm256_slli_epi16(qh, 4)),
                                                   _mm256_slli_epi16(qh, 2), 1);
            const __m512i h23 = _mm512_inserti64x4(_mm512_zextsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
            const __m512i q0 = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(h01, m3));
            const __m512i q1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), _mm512_and_si512(h23, m3));
            // scales 8h..8h+3 for q0, 8h+4..8h+7 for q1
            const __m512i s0 = _mm512_permutexvar_epi16(_mm512_add_epi16(sidx, _mm512_set1_epi16(short(8 * h))), scw);
            const __m512i s1 = _mm512_permutexvar_epi16(_mm512_add_epi16(sidx, _mm512_set1_epi16(short(8 * h + 4))), scw);
            for (int t = 0; t < NT; t++) {
                const int8_t *q8 = (reinterpret_cast<const BlockQ8_K *>(a + t * as) + i)->qs + 128 * h;
                sumi[t] = _mm512_dpwssd_epi32(sumi[t], _mm512_maddubs_epi16(q0, load512(q8)), s0);
                sumi[t] = _mm512_dpwssd_epi32(sumi[t], _mm512_maddubs_epi16(q1, load512(q8 + 64)), s1);
            }
        }
        for (int t = 0; t < NT; t++) {
            const BlockQ8_K *y = reinterpret_cast<const BlockQ8_K *>(a + t * as) + i;
            acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * y->d), _mm512_cvtepi32_ps(sumi[t]), acc[t]);
        }
    }
    for (int t = 0; t < NT; t++) res[t] = hsum512(acc[t]);
}

// ---- legacy signed blocks, regrouped (prefill) ------------------------------------------------
//
// In the kernels above each block's 8 i32 lanes still need a horizontal sum before its
// scale applies, which costs more than the multiply itself. Here 16 blocks go side by
// side instead: lane b of zmm k holds bytes 4k..4k+3 of block b, so 8 vpdpbusd leave
// block b's whole integer sum in lane b, and one multiply by the 16 scale products
// finishes all 16 blocks. The activations are regrouped once per matmul (regroup_act),
// signed; the weights are taken as their unsigned quants u = q + kOff (the nibbles as
// stored; Q8_0 flipped by 128), loaded once per row and group for every token of the
// tile, so vpdpbusd(u, a) gives Σ q·a + kOff·Σa and kOff·Σa is taken off again from each
// block's activation sum (exact integers: any order gives the same sums). Nothing per
// weight row needs preparing, which a decode token (one per row) could not repay. Rows
// go four at a time so that each token's activations are loaded once for four rows.
//
// A regrouped activation group: a[8][64] (zmm k, lane b = bytes 4k..4k+3 of block b),
// d[16] (f32 scales), then for Q8_1 rows (weights with a min) s[16] (f32 d·Σa), for Q8_0
// rows Σa[16] (i32); blocks past the row's end are zero.
constexpr int kGroup = 16;
constexpr size_t group_bytes(bool) { return 8 * 64 + 64 + 64; }

inline __m512i lane_offsets(size_t block_size) {
    return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                              _mm512_set1_epi32(int(block_size)));
}

// A block's bytes as dword fields: the quants (kNq dwords from kQs), the fifth bits (one
// dword at kQh, or none: -1), and for types with a min the (d, m) dword at 0; types
// without one have an f16 scale at 0. Field f of a group's 16 blocks is one zmm (lane
// b = block b): gathered from the blocks as stored, or loaded from weights repacked at
// load time (quant.h: repack_rows_avx512), where a group of L live blocks holds field f
// at f·4L bytes and then, without a min, the L f16 scales: the same bytes, in zmm order.
//
// kQuad (packed only): the last, short group (L <= 4 live blocks) of four rows at once,
// row r's blocks in lanes 4r..4r+3 (`rows` holds the four rows' group starts; `live`
// the live lanes of every quarter).
template <class G, bool kPacked, bool kQuad = false>
struct GroupLoad {
    static constexpr int kFields = G::kNq + (G::kQh >= 0) + (G::kMin ? 1 : 0);
    const uint8_t *w;
    __mmask16 live;
    __m512i idx;
    int L;
    const uint8_t *const *rows = nullptr;
    __m512i field(int off, int f) const {
        if constexpr (kQuad) {
            const __mmask8 m = __mmask8(live & 0xF);
            const size_t at = size_t(f) * 4 * L;
            __m512i z = _mm512_castsi128_si512(_mm_maskz_loadu_epi32(m, rows[0] + at));
            z = _mm512_inserti32x4(z, _mm_maskz_loadu_epi32(m, rows[1] + at), 1);
            z = _mm512_inserti32x4(z, _mm_maskz_loadu_epi32(m, rows[2] + at), 2);
            return _mm512_inserti32x4(z, _mm_maskz_loadu_epi32(m, rows[3] + at), 3);
        } else if constexpr (kPacked) {
            return _mm512_maskz_loadu_epi32(live, w + size_t(f) * 4 * L);
        } else {
            return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), live, idx, w + off, 1);
        }
    }
    // f32 scales and (types with a min) mins of the live blocks, 0 elsewhere.
    void scales(__m512 &d, __m512 &m) const {
        if constexpr (G::kMin) {
            const __m512i dm = field(0, kFields - 1);
            d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dm));
            m = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dm, 16)));
        } else {
            __m256i h;
            if constexpr (kQuad) {
                const __mmask8 m = __mmask8(live & 0xF);
                const size_t at = size_t(kFields) * 4 * L;
                h = _mm256_setr_epi64x(_mm_cvtsi128_si64(_mm_maskz_loadu_epi16(m, rows[0] + at)),
                                       _mm_cvtsi128_si64(_mm_maskz_loadu_epi16(m, rows[1] + at)),
                                       _mm_cvtsi128_si64(_mm_maskz_loadu_epi16(m, rows[2] + at)),
                                       _mm_cvtsi128_si64(_mm_maskz_loadu_epi16(m, rows[3] + at)));
            } else if constexpr (kPacked) {
                h = _mm256_maskz_loadu_epi16(live, w + size_t(kFields) * 4 * L);
            } else {
                h = _mm512_cvtepi32_epi16(field(0, -1));
            }
            d = _mm512_cvtph_ps(h);
            m = _mm512_setzero_ps();
        }
    }
    // The 8 zmm of the group's quants as unsigned bytes u = q + G::kOff (dead lanes 0).
    void weights(__m512i *z) const {
        if constexpr (G::kNq == 8) {  // Q8_0: signed bytes
            const __m512i flip = _mm512_set1_epi8(char(0x80));
            for (int k = 0; k < 8; k++) z[k] = _mm512_maskz_xor_epi32(live, field(G::kQs + 4 * k, k), flip);
            return;
        }
        // 32 nibbles a block: z[k] byte i = element 4k+i
        const __m512i m4 = _mm512_set1_epi8(0x0F);
        for (int k = 0; k < 4; k++) {
            const __m512i g = field(G::kQs + 4 * k, k);
            z[k] = _mm512_and_si512(g, m4);
            z[k + 4] = _mm512_and_si512(_mm512_srli_epi16(g, 4), m4);
        }
        if constexpr (G::kQh >= 0) {
            // Adds 16 to element j where bit j of the block's 32-bit qh is set: byte i of
            // z[k] is element 4k+i, its bit is bit 4(k&1)+i of qh's byte k>>1; spread that
            // byte over the dword and test per byte
            const __m512i h = field(G::kQh, 4);
            for (int k = 0; k < 8; k++) {
                const char kb = char(k >> 1);
                const __m512i spread = _mm512_shuffle_epi8(
                    h, _mm512_set4_epi32(0x0C0C0C0C + 0x01010101 * kb, 0x08080808 + 0x01010101 * kb,
                                         0x04040404 + 0x01010101 * kb, 0x01010101 * kb));
                const int sh = 4 * (k & 1);
                const __m512i bits =
                    _mm512_set1_epi32(int((1u << sh) | (2u << (sh + 8)) | (4u << (sh + 16)) | (8u << (sh + 24))));
                z[k] = _mm512_mask_add_epi8(z[k], _mm512_test_epi8_mask(spread, bits), z[k], _mm512_set1_epi8(0x10));
            }
        }
    }
};

// Per type: block size, the offset that makes its quants unsigned, whether it has a min,
// and where its dword fields sit (GroupLoad).
struct Q4_0G {
    static constexpr size_t kSize = sizeof(BlockQ4_0);
    static constexpr int kOff = 8, kQs = 2, kNq = 4, kQh = -1;
    static constexpr bool kMin = false;
};
struct Q5_0G {
    static constexpr size_t kSize = sizeof(BlockQ5_0);
    static constexpr int kOff = 16, kQs = 6, kNq = 4, kQh = 2;
    static constexpr bool kMin = false;
};
struct Q8_0G {
    static constexpr size_t kSize = sizeof(BlockQ8_0);
    static constexpr int kOff = 128, kQs = 2, kNq = 8, kQh = -1;
    static constexpr bool kMin = false;
};
struct Q4_1G {
    static constexpr size_t kSize = sizeof(BlockQ4_1);
    static constexpr int kOff = 0, kQs = 4, kNq = 4, kQh = -1;
    static constexpr bool kMin = true;
};
struct Q5_1G {
    static constexpr size_t kSize = sizeof(BlockQ5_1);
    static constexpr int kOff = 0, kQs = 8, kNq = 4, kQh = 4;
    static constexpr bool kMin = true;
};

// The last group of four packed rows when it holds L <= 4 blocks, for up to
// kMaxTokens tokens (res as in tile_regrouped, holding the earlier groups' sums): the
// four rows' blocks share each zmm (row r in lanes 4r..4r+3, activations repeated in
// every quarter), so the unpacking and the 8 vpdpbusd run once instead of four times at
// a quarter of the lanes. Each row's products and sums are then moved back to lanes
// 0..3 (zeros elsewhere, as the dead lanes of the one-row path are) before the same
// fused multiply-adds: the same bytes as that path.
template <class G, int kMaxTokens>
void tail_quad(int64_t nb, int64_t ng, const uint8_t *const *rows, const uint8_t *va, size_t as, int nt,
               __m512 (*res)[kMaxTokens]) {
    const int64_t g = ng - 1;
    const int L = int(nb - g * kGroup);
    const __mmask16 q = __mmask16((1u << L) - 1);
    const __mmask16 live = __mmask16(q | q << 4 | q << 8 | q << 12);
    const GroupLoad<G, true, true> ld{rows[0], live, _mm512_setzero_si512(), L, rows};
    __m512i wq[8];
    __m512 dw, mw;
    ld.weights(wq);
    ld.scales(dw, mw);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const uint8_t *ag = va + size_t(g) * group_bytes(G::kMin);
    for (int t = 0; t < nt; t++, ag += as) {
        __m512i a[8];
        for (int k = 0; k < 8; k++) a[k] = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i *>(ag + 64 * k)));
        const __m512 da = _mm512_broadcast_f32x4(_mm_loadu_ps(reinterpret_cast<const float *>(ag + 8 * 64)));
        const __m512 sa = G::kMin ? _mm512_loadu_ps(reinterpret_cast<const float *>(ag + 8 * 64 + 64)) : _mm512_setzero_ps();
        const __m512i corr = G::kMin ? _mm512_setzero_si512()
                                     : _mm512_mullo_epi32(_mm512_broadcast_i32x4(_mm_loadu_si128(
                                                              reinterpret_cast<const __m128i *>(ag + 8 * 64 + 64))),
                                                          _mm512_set1_epi32(-G::kOff));
        __m512i s0 = _mm512_dpbusd_epi32(corr, wq[0], a[0]);
        __m512i s1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq[1], a[1]);
        for (int k = 2; k < 8; k += 2) {
            s0 = _mm512_dpbusd_epi32(s0, wq[k], a[k]);
            s1 = _mm512_dpbusd_epi32(s1, wq[k + 1], a[k + 1]);
        }
        const __m512 x4 = _mm512_mul_ps(dw, da), y4 = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
        for (int r = 0; r < 4; r++) {
            const __m512i from = _mm512_add_epi32(iota, _mm512_set1_epi32(4 * r));
            const __m512 x = _mm512_maskz_permutexvar_ps(0xF, from, x4), y = _mm512_maskz_permutexvar_ps(0xF, from, y4);
            const __m512 prev = g == 0 ? _mm512_setzero_ps() : res[r][t];
            res[r][t] = _mm512_fmadd_ps(x, y, prev);
            if (G::kMin) res[r][t] = _mm512_fmadd_ps(_mm512_maskz_permutexvar_ps(0xF, from, mw), sa, res[r][t]);
        }
    }
}

template <class G, bool kPacked>
void tile_regrouped(int64_t n, const void *vw, size_t ws, int nr, const void *va, size_t as, const float *sc, int nt,
                    float *out, int64_t ldo) {
    constexpr int kMaxTokens = 128, kRows = 4;
    if (nt > kMaxTokens) {
        for (int t0 = 0; t0 < nt; t0 += kMaxTokens)
            tile_regrouped<G, kPacked>(n, vw, ws, nr, static_cast<const uint8_t *>(va) + size_t(t0) * as, as, sc,
                              nt - t0 < kMaxTokens ? nt - t0 : kMaxTokens, out + t0 * ldo, ldo);
        return;
    }
    const int64_t nb = n / QK, ng = (nb + kGroup - 1) / kGroup;
    const __m512i idx = lane_offsets(G::kSize);
    constexpr size_t kGroupBytes = group_bytes(G::kMin);
    alignas(64) __m512i wq[kRows][8];  // unsigned weights of the group, per row
    __m512 dw[kRows], mw[kRows];
    alignas(64) static thread_local __m512 res[kRows][kMaxTokens];
    // Decode: a short last group (rows of 640: 16 + 4 blocks) takes four rows at once.
    const bool quad_tail = kPacked && nt <= kPrefetchMaxTokens && nb % kGroup != 0 && nb % kGroup <= 4;
    for (int r0 = 0; r0 < nr; r0 += kRows) {
        const int rn = nr - r0 < kRows ? nr - r0 : kRows;
        if (nt <= kPrefetchMaxTokens) prefetch_ahead(static_cast<const uint8_t *>(vw) + size_t(r0) * ws, size_t(kRows) * ws);
        const bool quad = quad_tail && rn == kRows;
        for (int64_t g = 0; g < ng - (quad ? 1 : 0); g++) {
            const int live_n = int(nb - g * kGroup < kGroup ? nb - g * kGroup : kGroup);
            const __mmask16 live = __mmask16((1u << live_n) - 1);
            for (int r = 0; r < kRows; r++) {
                if (r >= rn) {  // rows past the tile: zero weights and scales
                    for (int k = 0; k < 8; k++) wq[r][k] = _mm512_setzero_si512();
                    dw[r] = mw[r] = _mm512_setzero_ps();
                    continue;
                }
                const uint8_t *w = static_cast<const uint8_t *>(vw) + size_t(r0 + r) * ws + g * kGroup * G::kSize;
                const GroupLoad<G, kPacked> ld{w, live, idx, live_n};
                ld.weights(wq[r]);
                ld.scales(dw[r], mw[r]);
            }
            const uint8_t *ag = static_cast<const uint8_t *>(va) + size_t(g) * kGroupBytes;
            for (int t = 0; t < nt; t++, ag += as) {
                __m512i a[8];
                for (int k = 0; k < 8; k++) a[k] = load512(ag + 64 * k);
                const __m512 da = _mm512_loadu_ps(reinterpret_cast<const float *>(ag + 8 * 64));
                const __m512 sa = G::kMin ? _mm512_loadu_ps(reinterpret_cast<const float *>(ag + 8 * 64 + 64))
                                          : _mm512_setzero_ps();
                // −kOff·Σa per block (the weights' offset; none for types with a min)
                const __m512i corr = G::kMin ? _mm512_setzero_si512()
                                             : _mm512_mullo_epi32(load512(ag + 8 * 64 + 64), _mm512_set1_epi32(-G::kOff));
                for (int r = 0; r < kRows; r++) {
                    __m512i s0 = _mm512_dpbusd_epi32(corr, wq[r][0], a[0]);
                    __m512i s1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq[r][1], a[1]);
                    for (int k = 2; k < 8; k += 2) {
                        s0 = _mm512_dpbusd_epi32(s0, wq[r][k], a[k]);
                        s1 = _mm512_dpbusd_epi32(s1, wq[r][k + 1], a[k + 1]);
                    }
                    const __m512i isum = _mm512_add_epi32(s0, s1);
                    // the first group starts from zero (no pass to clear res first)
                    const __m512 prev = g == 0 ? _mm512_setzero_ps() : res[r][t];
                    res[r][t] = _mm512_fmadd_ps(_mm512_mul_ps(dw[r], da), _mm512_cvtepi32_ps(isum), prev);
                    if (G::kMin) res[r][t] = _mm512_fmadd_ps(mw[r], sa, res[r][t]);
                }
            }
        }
        if (quad) {
            const uint8_t *rows[kRows];
            for (int r = 0; r < kRows; r++)
                rows[r] = static_cast<const uint8_t *>(vw) + size_t(r0 + r) * ws + size_t(ng - 1) * kGroup * G::kSize;
            tail_quad<G, kMaxTokens>(nb, ng, rows, static_cast<const uint8_t *>(va), as, nt, res);
        }
        for (int r = 0; r < rn; r++)
            for (int t = 0; t < nt; t++) out[t * ldo + r0 + r] = hsum512(res[r][t]);
    }
}

// ---- drivers -------------------------------------------------------------------------------

template <template <int> class R, int kMaxNT>
struct Kernel {
    static float dot(int64_t n, const void *w, const void *a) {
        float r;
        R<1>::run(n, static_cast<const uint8_t *>(w), static_cast<const uint8_t *>(a), 0, nullptr, &r);
        return r;
    }
    template <int NT>
    static void rest(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *sc, int left,
                     float *res) {
        if constexpr (NT > 0) {
            if (left == NT) return R<NT>::run(n, w, a, as, sc, res);
            rest<NT - 1>(n, w, a, as, sc, left, res);
        }
    }
    static void tile(int64_t n, const void *vw, size_t ws, int nr, const void *va, size_t as, const float *sc,
                     int nt, float *out, int64_t ldo) {
        const int64_t nbs = n / QK;  // scales per activation row (used only with Q8_0 rows)
        const uint8_t *w = static_cast<const uint8_t *>(vw), *a = static_cast<const uint8_t *>(va);
        for (int r = 0; r < nr; r++, w += ws) {
            if (nt <= kPrefetchMaxTokens) prefetch_ahead(w, ws);
            float res[kMaxNT];
            int t = 0;
            for (; t + kMaxNT <= nt; t += kMaxNT) {
                R<kMaxNT>::run(n, w, a + t * as, as, sc ? sc + t * nbs : nullptr, res);
                for (int k = 0; k < kMaxNT; k++) out[(t + k) * ldo + r] = res[k];
            }
            const int left = nt - t;
            rest<kMaxNT - 1>(n, w, a + t * as, as, sc ? sc + t * nbs : nullptr, left, res);
            for (int k = 0; k < left; k++) out[(t + k) * ldo + r] = res[k];
        }
    }
};

#define TACTIC_ROW(Name, call)                                                                          \
    template <int NT>                                                                                   \
    struct Name {                                                                                       \
        static void run(int64_t n, const uint8_t *w, const uint8_t *a, size_t as, const float *sc, float *r) { \
            call;                                                                                       \
        }                                                                                               \
    };
TACTIC_ROW(RQ4_K, (row_k45<false, NT>(n, w, a, as, sc, r)))
TACTIC_ROW(RQ5_K, (row_k45<true, NT>(n, w, a, as, sc, r)))
TACTIC_ROW(RQ6_K, (row_q6k<NT>(n, w, a, as, sc, r)))
#undef TACTIC_ROW

}  // namespace

size_t regrouped_act_row_size(bool with_sums, int64_t n) {
    return size_t((n / QK + kGroup - 1) / kGroup) * group_bytes(with_sums);
}

void regroup_act(bool with_sums, int64_t n, const void *a, void *dst) {
    // Q8_0 blocks: d, qs[32]; Q8_1 blocks: d, s, qs[32]
    const size_t bsize = with_sums ? sizeof(BlockQ8_1) : sizeof(BlockQ8_0), qs = with_sums ? 4 : 2;
    const int64_t nb = n / QK, ng = (nb + kGroup - 1) / kGroup;
    const __m512i idx = lane_offsets(bsize);
    const uint8_t *src = static_cast<const uint8_t *>(a);
    uint8_t *out = static_cast<uint8_t *>(dst);
    for (int64_t g = 0; g < ng; g++, src += kGroup * bsize, out += group_bytes(with_sums)) {
        const int live_n = int(nb - g * kGroup < kGroup ? nb - g * kGroup : kGroup);
        const __mmask16 live = __mmask16((1u << live_n) - 1);
        __m512i sum = _mm512_setzero_si512();
        for (int k = 0; k < 8; k++) {
            const __m512i q = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), live, idx, src + qs + 4 * k, 1);
            _mm512_storeu_si512(out + 64 * k, q);
            sum = _mm512_dpbusd_epi32(sum, _mm512_set1_epi8(1), q);
        }
        const __m512i dh = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), live, idx, src, 1);
        _mm512_storeu_ps(out + 8 * 64, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dh)));
        if (with_sums)
            _mm512_storeu_ps(out + 8 * 64 + 64, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dh, 16))));
        else
            _mm512_storeu_si512(out + 8 * 64 + 64, sum);
    }
}

DotTileFn dot_tile_regrouped_avx512(uint32_t type, bool packed) {
    switch (type) {
        case GGML_Q4_0: return packed ? tile_regrouped<Q4_0G, true> : tile_regrouped<Q4_0G, false>;
        case GGML_Q5_0: return packed ? tile_regrouped<Q5_0G, true> : tile_regrouped<Q5_0G, false>;
        case GGML_Q8_0: return packed ? tile_regrouped<Q8_0G, true> : tile_regrouped<Q8_0G, false>;
        case GGML_Q4_1: return packed ? tile_regrouped<Q4_1G, true> : tile_regrouped<Q4_1G, false>;
        case GGML_Q5_1: return packed ? tile_regrouped<Q5_1G, true> : tile_regrouped<Q5_1G, false>;
        default: return nullptr;
    }
}

VecDotFn vec_dot_avx512(uint32_t type) {
    switch (type) {
        case GGML_Q4_K: return Kernel<RQ4_K, 1>::dot;
        case GGML_Q5_K: return Kernel<RQ5_K, 1>::dot;
        case GGML_Q6_K: return Kernel<RQ6_K, 1>::dot;
        default: return nullptr;
    }
}

DotTileFn dot_tile_avx512(uint32_t type) {
    switch (type) {
        case GGML_Q4_K: return Kernel<RQ4_K, kKQuantTokens>::tile;
        case GGML_Q5_K: return Kernel<RQ5_K, kKQuantTokens>::tile;
        case GGML_Q6_K: return Kernel<RQ6_K, kKQuantTokens>::tile;
        default: return nullptr;
    }
}

}  // namespace q
}  // namespace tactic

TACTIC_TARGET_END
