// Scalar reference dot products: a weight row against an activation row already in the
// weight's vec_dot type (FORMATS.md §2.3). Integer sums per block are exact; the f32
// combination per block follows ggml, so the SIMD versions differ only in the order of
// the final f32 additions.
#include "../quant.h"
#include "blocks.h"

namespace tactic {
namespace q {

namespace {

float dot_f32(int64_t n, const void *vw, const void *va) {
    const float *w = static_cast<const float *>(vw), *a = static_cast<const float *>(va);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += double(w[i] * a[i]);
    return float(s);
}

float dot_f16(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = static_cast<const uint8_t *>(vw), *a = static_cast<const uint8_t *>(va);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += double(load_f16(w + 2 * i) * load_f16(a + 2 * i));
    return float(s);
}

float dot_bf16(int64_t n, const void *vw, const void *va) {
    const uint8_t *w = static_cast<const uint8_t *>(vw), *a = static_cast<const uint8_t *>(va);
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        uint16_t x, y;
        std::memcpy(&x, w + 2 * i, 2);
        std::memcpy(&y, a + 2 * i, 2);
        s += double(bf16_to_f32(x) * bf16_to_f32(y));
    }
    return float(s);
}

// Legacy blocks: unpack the 32 weights to bytes first, so the products are one plain
// loop the compiler vectorizes even without -mavx2 (the bit twiddling per element
// kept it scalar, at ~1 GMAC/s).
inline void unpack_q4(const uint8_t *qs, int offset, int8_t *q) {
    for (int j = 0; j < 16; j++) {
        q[j] = int8_t((qs[j] & 15) - offset);
        q[j + 16] = int8_t((qs[j] >> 4) - offset);
    }
}
// kBit4[b]: byte k = 16 if bit k of b is set, else 0 (the fifth bits of 8 elements).
struct Bit4Table {
    uint64_t v[256];
    constexpr Bit4Table() : v() {
        for (int b = 0; b < 256; b++)
            for (int k = 0; k < 8; k++)
                if (b >> k & 1) v[b] |= uint64_t(16) << (8 * k);
    }
};
constexpr Bit4Table kBit4;

inline void unpack_q5(const uint8_t *qs, uint32_t qh, int offset, int8_t *q) {
    uint8_t u[32];
    for (int j = 0; j < 16; j++) {
        u[j] = qs[j] & 15;
        u[j + 16] = qs[j] >> 4;
    }
    uint64_t w[4];
    std::memcpy(w, u, 32);
    for (int g = 0; g < 4; g++) w[g] |= kBit4.v[(qh >> (8 * g)) & 255];
    std::memcpy(u, w, 32);
    for (int j = 0; j < 32; j++) q[j] = int8_t(u[j] - offset);
}
inline int dot32(const int8_t *a, const int8_t *b) {
    int s = 0;
    for (int j = 0; j < 32; j++) s += a[j] * b[j];
    return s;
}

float dot_q4_0(int64_t n, const void *vw, const void *va) {
    const BlockQ4_0 *x = static_cast<const BlockQ4_0 *>(vw);
    const BlockQ8_0 *y = static_cast<const BlockQ8_0 *>(va);
    float sum = 0;
    int8_t q[32];
    for (int64_t i = 0; i < n / QK; i++) {
        unpack_q4(x[i].qs, 8, q);
        sum += float(dot32(q, y[i].qs)) * (load_f16(x[i].d) * load_f16(y[i].d));
    }
    return sum;
}

float dot_q4_1(int64_t n, const void *vw, const void *va) {
    const BlockQ4_1 *x = static_cast<const BlockQ4_1 *>(vw);
    const BlockQ8_1 *y = static_cast<const BlockQ8_1 *>(va);
    float sum = 0;
    int8_t q[32];
    for (int64_t i = 0; i < n / QK; i++) {
        unpack_q4(x[i].qs, 0, q);
        sum += (load_f16(x[i].d) * load_f16(y[i].d)) * float(dot32(q, y[i].qs)) + load_f16(x[i].m) * load_f16(y[i].s);
    }
    return sum;
}

float dot_q5_0(int64_t n, const void *vw, const void *va) {
    const BlockQ5_0 *x = static_cast<const BlockQ5_0 *>(vw);
    const BlockQ8_0 *y = static_cast<const BlockQ8_0 *>(va);
    float sum = 0;
    int8_t q[32];
    for (int64_t i = 0; i < n / QK; i++) {
        unpack_q5(x[i].qs, load_u32(x[i].qh), 16, q);
        sum += float(dot32(q, y[i].qs)) * (load_f16(x[i].d) * load_f16(y[i].d));
    }
    return sum;
}

float dot_q5_1(int64_t n, const void *vw, const void *va) {
    const BlockQ5_1 *x = static_cast<const BlockQ5_1 *>(vw);
    const BlockQ8_1 *y = static_cast<const BlockQ8_1 *>(va);
    float sum = 0;
    int8_t q[32];
    for (int64_t i = 0; i < n / QK; i++) {
        unpack_q5(x[i].qs, load_u32(x[i].qh), 0, q);
        sum += (load_f16(x[i].d) * load_f16(y[i].d)) * float(dot32(q, y[i].qs)) + load_f16(x[i].m) * load_f16(y[i].s);
    }
    return sum;
}

float dot_q8_0(int64_t n, const void *vw, const void *va) {
    const BlockQ8_0 *x = static_cast<const BlockQ8_0 *>(vw);
    const BlockQ8_0 *y = static_cast<const BlockQ8_0 *>(va);
    float sum = 0;
    for (int64_t i = 0; i < n / QK; i++)
        sum += float(dot32(x[i].qs, y[i].qs)) * (load_f16(x[i].d) * load_f16(y[i].d));
    return sum;
}

// Q4_K / Q5_K: d·d8·Σ_s sc_s·Σ q·q8 − dmin·d8·Σ_s mn_s·(bsums[2s] + bsums[2s+1]).
// The levels are unpacked to bytes first so the products vectorize (as for Q5_0).
float dot_k45(int64_t n, const void *vw, const void *va, bool five_bit) {
    const uint8_t *w = static_cast<const uint8_t *>(vw);
    const BlockQ8_K *y = static_cast<const BlockQ8_K *>(va);
    const size_t bsize = five_bit ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
    float sum = 0;
    uint8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, w += bsize) {
        const uint8_t *scales = w + 4;
        const uint8_t *qs = five_bit ? w + 48 : w + 16;
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                q[64 * c + l] = qs[32 * c + l] & 15;
                q[64 * c + 32 + l] = qs[32 * c + l] >> 4;
            }
        if (five_bit) {
            const uint8_t *qh = w + 16;
            for (int c = 0; c < 4; c++)
                for (int l = 0; l < 32; l++) {
                    q[64 * c + l] |= uint8_t(((qh[l] >> (2 * c)) & 1) << 4);
                    q[64 * c + 32 + l] |= uint8_t(((qh[l] >> (2 * c + 1)) & 1) << 4);
                }
        }
        int isum = 0, msum = 0;
        for (int s = 0; s < 8; s++) {
            uint8_t sc, mn;
            scale_min_k4(s, scales, &sc, &mn);
            int a = 0;
            for (int l = 0; l < 32; l++) a += q[32 * s + l] * y[i].qs[32 * s + l];
            isum += sc * a;
            msum += mn * (y[i].bsums[2 * s] + y[i].bsums[2 * s + 1]);
        }
        const float d = load_f16(w) * y[i].d, dmin = load_f16(w + 2) * y[i].d;
        sum += d * float(isum) - dmin * float(msum);
    }
    return sum;
}

float dot_q4_k(int64_t n, const void *w, const void *a) { return dot_k45(n, w, a, false); }
float dot_q5_k(int64_t n, const void *w, const void *a) { return dot_k45(n, w, a, true); }

// Q6_K: d·d8·Σ_g sc_g·Σ (q−32)·q8 over 16-element groups.
float dot_q6_k(int64_t n, const void *vw, const void *va) {
    const BlockQ6_K *x = static_cast<const BlockQ6_K *>(vw);
    const BlockQ8_K *y = static_cast<const BlockQ8_K *>(va);
    float sum = 0;
    int8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++) {
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h, *qh = x[i].qh + 32 * h;
            int8_t *qq = q + 128 * h;
            for (int l = 0; l < 32; l++) {
                qq[l] = int8_t(((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4)) - 32);
                qq[l + 32] = int8_t(((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32);
                qq[l + 64] = int8_t(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                qq[l + 96] = int8_t(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
        }
        int isum = 0;
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += q[16 * g + l] * y[i].qs[16 * g + l];
            isum += x[i].scales[g] * s;
        }
        sum += load_f16(x[i].d) * y[i].d * float(isum);
    }
    return sum;
}

// One dot product per (row, token): the reference the SIMD tiles are held to.
template <VecDotFn F>
void tile(int64_t n, const void *w, size_t ws, int nr, const void *a, size_t as, const float *, int nt, float *out,
          int64_t ldo) {
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < nt; t++)
            out[t * ldo + r] = F(n, static_cast<const uint8_t *>(w) + size_t(r) * ws,
                                 static_cast<const uint8_t *>(a) + size_t(t) * as);
}

}  // namespace

DotTileFn dot_tile_scalar(uint32_t type) {
    switch (type) {
        case GGML_F32: return tile<dot_f32>;
        case GGML_F16: return tile<dot_f16>;
        case GGML_BF16: return tile<dot_bf16>;
        case GGML_Q4_0: return tile<dot_q4_0>;
        case GGML_Q4_1: return tile<dot_q4_1>;
        case GGML_Q5_0: return tile<dot_q5_0>;
        case GGML_Q5_1: return tile<dot_q5_1>;
        case GGML_Q8_0: return tile<dot_q8_0>;
        case GGML_Q4_K: return tile<dot_q4_k>;
        case GGML_Q5_K: return tile<dot_q5_k>;
        case GGML_Q6_K: return tile<dot_q6_k>;
        default: return nullptr;
    }
}

VecDotFn vec_dot_scalar(uint32_t type) {
    switch (type) {
        case GGML_F32: return dot_f32;
        case GGML_F16: return dot_f16;
        case GGML_BF16: return dot_bf16;
        case GGML_Q4_0: return dot_q4_0;
        case GGML_Q4_1: return dot_q4_1;
        case GGML_Q5_0: return dot_q5_0;
        case GGML_Q5_1: return dot_q5_1;
        case GGML_Q8_0: return dot_q8_0;
        case GGML_Q4_K: return dot_q4_k;
        case GGML_Q5_K: return dot_q5_k;
        case GGML_Q6_K: return dot_q6_k;
        default: return nullptr;
    }
}

}  // namespace q
}  // namespace tactic
