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

float dot_q4_0(int64_t n, const void *vw, const void *va) {
    const BlockQ4_0 *x = static_cast<const BlockQ4_0 *>(vw);
    const BlockQ8_0 *y = static_cast<const BlockQ8_0 *>(va);
    float sum = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        int s = 0;
        for (int j = 0; j < 16; j++)
            s += ((x[i].qs[j] & 15) - 8) * y[i].qs[j] + ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
        sum += float(s) * (load_f16(x[i].d) * load_f16(y[i].d));
    }
    return sum;
}

float dot_q4_1(int64_t n, const void *vw, const void *va) {
    const BlockQ4_1 *x = static_cast<const BlockQ4_1 *>(vw);
    const BlockQ8_1 *y = static_cast<const BlockQ8_1 *>(va);
    float sum = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        int s = 0;
        for (int j = 0; j < 16; j++) s += (x[i].qs[j] & 15) * y[i].qs[j] + (x[i].qs[j] >> 4) * y[i].qs[j + 16];
        sum += (load_f16(x[i].d) * load_f16(y[i].d)) * float(s) + load_f16(x[i].m) * load_f16(y[i].s);
    }
    return sum;
}

float dot_q5_0(int64_t n, const void *vw, const void *va) {
    const BlockQ5_0 *x = static_cast<const BlockQ5_0 *>(vw);
    const BlockQ8_0 *y = static_cast<const BlockQ8_0 *>(va);
    float sum = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        const uint32_t qh = load_u32(x[i].qh);
        int s = 0;
        for (int j = 0; j < 16; j++) {
            const int lo = ((x[i].qs[j] & 15) | int(((qh >> j) & 1) << 4)) - 16;
            const int hi = ((x[i].qs[j] >> 4) | int(((qh >> (j + 16)) & 1) << 4)) - 16;
            s += lo * y[i].qs[j] + hi * y[i].qs[j + 16];
        }
        sum += float(s) * (load_f16(x[i].d) * load_f16(y[i].d));
    }
    return sum;
}

float dot_q5_1(int64_t n, const void *vw, const void *va) {
    const BlockQ5_1 *x = static_cast<const BlockQ5_1 *>(vw);
    const BlockQ8_1 *y = static_cast<const BlockQ8_1 *>(va);
    float sum = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        const uint32_t qh = load_u32(x[i].qh);
        int s = 0;
        for (int j = 0; j < 16; j++) {
            const int lo = (x[i].qs[j] & 15) | int(((qh >> j) & 1) << 4);
            const int hi = (x[i].qs[j] >> 4) | int(((qh >> (j + 16)) & 1) << 4);
            s += lo * y[i].qs[j] + hi * y[i].qs[j + 16];
        }
        sum += (load_f16(x[i].d) * load_f16(y[i].d)) * float(s) + load_f16(x[i].m) * load_f16(y[i].s);
    }
    return sum;
}

float dot_q8_0(int64_t n, const void *vw, const void *va) {
    const BlockQ8_0 *x = static_cast<const BlockQ8_0 *>(vw);
    const BlockQ8_0 *y = static_cast<const BlockQ8_0 *>(va);
    float sum = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        int s = 0;
        for (int j = 0; j < QK; j++) s += x[i].qs[j] * y[i].qs[j];
        sum += float(s) * (load_f16(x[i].d) * load_f16(y[i].d));
    }
    return sum;
}

// Q4_K / Q5_K: d·d8·Σ_s sc_s·Σ q·q8 − dmin·d8·Σ_s mn_s·(bsums[2s] + bsums[2s+1]).
float dot_k45(int64_t n, const void *vw, const void *va, bool five_bit) {
    const uint8_t *w = static_cast<const uint8_t *>(vw);
    const BlockQ8_K *y = static_cast<const BlockQ8_K *>(va);
    const size_t bsize = five_bit ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++, w += bsize) {
        const uint8_t *scales = w + 4;
        const uint8_t *qh = five_bit ? w + 16 : nullptr;
        const uint8_t *qs = five_bit ? w + 48 : w + 16;
        const int8_t *q8 = y[i].qs;
        int isum = 0, msum = 0;
        for (int c = 0; c < 4; c++) {
            uint8_t s0, m0, s1, m1;
            scale_min_k4(2 * c, scales, &s0, &m0);
            scale_min_k4(2 * c + 1, scales, &s1, &m1);
            int a0 = 0, a1 = 0;
            for (int l = 0; l < 32; l++) {
                int lo = qs[32 * c + l] & 15, hi = qs[32 * c + l] >> 4;
                if (qh) {
                    lo |= ((qh[l] >> (2 * c)) & 1) << 4;
                    hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
                }
                a0 += lo * q8[64 * c + l];
                a1 += hi * q8[64 * c + 32 + l];
            }
            isum += s0 * a0 + s1 * a1;
            msum += m0 * (y[i].bsums[4 * c] + y[i].bsums[4 * c + 1]) + m1 * (y[i].bsums[4 * c + 2] + y[i].bsums[4 * c + 3]);
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
    for (int64_t i = 0; i < n / QK_K; i++) {
        int isum = 0;
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h, *qh = x[i].qh + 32 * h;
            const int8_t *q8 = y[i].qs + 128 * h, *sc = x[i].scales + 8 * h;
            for (int k = 0; k < 4; k++) {
                for (int half = 0; half < 2; half++) {  // two 16-element groups per 32
                    int s = 0;
                    for (int l = 16 * half; l < 16 * half + 16; l++) {
                        const uint8_t byte = ql[l + 32 * (k & 1)];
                        const int lo = k < 2 ? (byte & 15) : (byte >> 4);
                        const int hi = (qh[l] >> (2 * k)) & 3;
                        s += ((lo | (hi << 4)) - 32) * q8[32 * k + l];
                    }
                    isum += sc[2 * k + half] * s;
                }
            }
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
