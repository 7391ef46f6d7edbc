// Dequantization of every supported block format (FORMATS.md §2.2), in the same f32
// operation order as ggml, so embedding rows match llama.cpp's get_rows exactly.
#include <string>

#include "../quant.h"
#include "blocks.h"

namespace tactic {

using namespace q;

namespace {

void deq_q4_0(const BlockQ4_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK) {
        const float d = load_f16(x[i].d);
        for (int j = 0; j < 16; j++) {
            y[j] = float((x[i].qs[j] & 15) - 8) * d;
            y[j + 16] = float((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void deq_q4_1(const BlockQ4_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK) {
        const float d = load_f16(x[i].d), m = load_f16(x[i].m);
        for (int j = 0; j < 16; j++) {
            y[j] = float(x[i].qs[j] & 15) * d + m;
            y[j + 16] = float(x[i].qs[j] >> 4) * d + m;
        }
    }
}

void deq_q5_0(const BlockQ5_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK) {
        const float d = load_f16(x[i].d);
        const uint32_t qh = load_u32(x[i].qh);
        for (int j = 0; j < 16; j++) {
            const int lo = (x[i].qs[j] & 15) | int(((qh >> j) & 1) << 4);
            const int hi = (x[i].qs[j] >> 4) | int(((qh >> (j + 16)) & 1) << 4);
            y[j] = float(lo - 16) * d;
            y[j + 16] = float(hi - 16) * d;
        }
    }
}

void deq_q5_1(const BlockQ5_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK) {
        const float d = load_f16(x[i].d), m = load_f16(x[i].m);
        const uint32_t qh = load_u32(x[i].qh);
        for (int j = 0; j < 16; j++) {
            const int lo = (x[i].qs[j] & 15) | int(((qh >> j) & 1) << 4);
            const int hi = (x[i].qs[j] >> 4) | int(((qh >> (j + 16)) & 1) << 4);
            y[j] = float(lo) * d + m;
            y[j + 16] = float(hi) * d + m;
        }
    }
}

void deq_q8_0(const BlockQ8_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK) {
        const float d = load_f16(x[i].d);
        for (int j = 0; j < QK; j++) y[j] = float(x[i].qs[j]) * d;
    }
}

void deq_q8_1(const BlockQ8_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK) {
        const float d = load_f16(x[i].d);
        for (int j = 0; j < QK; j++) y[j] = float(x[i].qs[j]) * d;
    }
}

// Q4_K and Q5_K share the layout of scales; qh == nullptr means Q4_K.
void deq_k45(const uint8_t *dd, const uint8_t *scales, const uint8_t *qs, const uint8_t *qh, float *y) {
    const float d = load_f16(dd), dmin = load_f16(dd + 2);
    for (int c = 0; c < 4; c++) {
        uint8_t s0, m0, s1, m1;
        scale_min_k4(2 * c, scales, &s0, &m0);
        scale_min_k4(2 * c + 1, scales, &s1, &m1);
        const float d0 = d * s0, dm0 = dmin * m0, d1 = d * s1, dm1 = dmin * m1;
        const uint8_t *q = qs + 32 * c;
        for (int l = 0; l < 32; l++) {
            int lo = q[l] & 15, hi = q[l] >> 4;
            if (qh) {
                lo |= ((qh[l] >> (2 * c)) & 1) << 4;
                hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
            }
            y[64 * c + l] = d0 * float(lo) - dm0;
            y[64 * c + 32 + l] = d1 * float(hi) - dm1;
        }
    }
}

void deq_q6_k(const BlockQ6_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK_K) {
        const float d = load_f16(x[i].d);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h, *qh = x[i].qh + 32 * h;
            const int8_t *sc = x[i].scales + 8 * h;
            float *yy = y + 128 * h;
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = int((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = int((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                yy[l] = d * float(sc[is + 0]) * float(q1);
                yy[l + 32] = d * float(sc[is + 2]) * float(q2);
                yy[l + 64] = d * float(sc[is + 4]) * float(q3);
                yy[l + 96] = d * float(sc[is + 6]) * float(q4);
            }
        }
    }
}

void deq_q8_k(const BlockQ8_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += QK_K)
        for (int j = 0; j < QK_K; j++) y[j] = x[i].d * float(x[i].qs[j]);
}

}  // namespace

void dequantize_row(uint32_t type, const void *vx, float *y, int64_t n) {
    const uint8_t *x = static_cast<const uint8_t *>(vx);
    switch (type) {
        case GGML_F32: std::memcpy(y, x, size_t(n) * 4); return;
        case GGML_F16:
            for (int64_t i = 0; i < n; i++) y[i] = load_f16(x + 2 * i);
            return;
        case GGML_BF16:
            for (int64_t i = 0; i < n; i++) {
                uint16_t h;
                std::memcpy(&h, x + 2 * i, 2);
                y[i] = bf16_to_f32(h);
            }
            return;
        case GGML_Q4_0: deq_q4_0(reinterpret_cast<const BlockQ4_0 *>(x), y, n / QK); return;
        case GGML_Q4_1: deq_q4_1(reinterpret_cast<const BlockQ4_1 *>(x), y, n / QK); return;
        case GGML_Q5_0: deq_q5_0(reinterpret_cast<const BlockQ5_0 *>(x), y, n / QK); return;
        case GGML_Q5_1: deq_q5_1(reinterpret_cast<const BlockQ5_1 *>(x), y, n / QK); return;
        case GGML_Q8_0: deq_q8_0(reinterpret_cast<const BlockQ8_0 *>(x), y, n / QK); return;
        case GGML_Q8_1: deq_q8_1(reinterpret_cast<const BlockQ8_1 *>(x), y, n / QK); return;
        case GGML_Q4_K: {
            const BlockQ4_K *b = reinterpret_cast<const BlockQ4_K *>(x);
            for (int64_t i = 0; i < n / QK_K; i++) deq_k45(b[i].d, b[i].scales, b[i].qs, nullptr, y + i * QK_K);
            return;
        }
        case GGML_Q5_K: {
            const BlockQ5_K *b = reinterpret_cast<const BlockQ5_K *>(x);
            for (int64_t i = 0; i < n / QK_K; i++) deq_k45(b[i].d, b[i].scales, b[i].qs, b[i].qh, y + i * QK_K);
            return;
        }
        case GGML_Q6_K: deq_q6_k(reinterpret_cast<const BlockQ6_K *>(x), y, n / QK_K); return;
        case GGML_Q8_K: deq_q8_k(reinterpret_cast<const BlockQ8_K *>(x), y, n / QK_K); return;
        default:
            fail(TACTIC_ERR_UNSUPPORTED,
                 std::string("dequantize: tensor type ") + type_traits(type).name + " is not supported");
    }
}

}  // namespace tactic
