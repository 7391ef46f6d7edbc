// TEMPORARY (replaced by the quant work): float-activation dot products over
// dequantized weights, enough to develop the forward pass against.
#include <vector>

#include "../common.h"
#include "../quant.h"

namespace tactic {

namespace {
inline float h2f(const uint8_t *p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return f16_to_f32(h);
}
void get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
    }
}
}  // namespace

void dequantize_row(uint32_t type, const void *vx, float *y, int64_t n) {
    const uint8_t *x = static_cast<const uint8_t *>(vx);
    switch (type) {
        case GGML_F32: std::memcpy(y, x, size_t(n) * 4); return;
        case GGML_F16: for (int64_t i = 0; i < n; i++) y[i] = h2f(x + 2 * i); return;
        case GGML_BF16: for (int64_t i = 0; i < n; i++) { uint16_t h; std::memcpy(&h, x + 2 * i, 2); y[i] = bf16_to_f32(h); } return;
        case GGML_Q8_0:
            for (int64_t b = 0; b < n / 32; b++, x += 34) {
                const float d = h2f(x);
                for (int j = 0; j < 32; j++) y[b * 32 + j] = d * float(int8_t(x[2 + j]));
            }
            return;
        case GGML_Q5_0:
            for (int64_t b = 0; b < n / 32; b++, x += 22) {
                const float d = h2f(x);
                uint32_t qh;
                std::memcpy(&qh, x + 2, 4);
                const uint8_t *qs = x + 6;
                for (int j = 0; j < 16; j++) {
                    const int lo = (qs[j] & 15) | (((qh >> j) & 1) << 4);
                    const int hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
                    y[b * 32 + j] = d * float(lo - 16);
                    y[b * 32 + j + 16] = d * float(hi - 16);
                }
            }
            return;
        case GGML_Q4_K:
            for (int64_t b = 0; b < n / 256; b++, x += 144) {
                const float d = h2f(x), dmin = h2f(x + 2);
                const uint8_t *sc = x + 4, *q = x + 16;
                float *yy = y + b * 256;
                for (int c = 0; c < 4; c++) {
                    uint8_t s0, m0, s1, m1;
                    get_scale_min_k4(2 * c, sc, &s0, &m0);
                    get_scale_min_k4(2 * c + 1, sc, &s1, &m1);
                    for (int l = 0; l < 32; l++) {
                        yy[64 * c + l] = d * s0 * (q[32 * c + l] & 15) - dmin * m0;
                        yy[64 * c + 32 + l] = d * s1 * (q[32 * c + l] >> 4) - dmin * m1;
                    }
                }
            }
            return;
        case GGML_Q6_K:
            for (int64_t b = 0; b < n / 256; b++, x += 210) {
                const uint8_t *ql = x, *qh = x + 128;
                const int8_t *sc = reinterpret_cast<const int8_t *>(x + 192);
                const float d = h2f(x + 208);
                for (int e = 0; e < 256; e++) {
                    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
                    const uint8_t byte = ql[64 * h + l + 32 * (k & 1)];
                    const int lo = k < 2 ? (byte & 15) : (byte >> 4);
                    const int hi = (qh[32 * h + l] >> (2 * k)) & 3;
                    y[b * 256 + e] = d * sc[e / 16] * float((lo | (hi << 4)) - 32);
                }
            }
            return;
        default: fail(TACTIC_ERR_UNSUPPORTED, std::string("dequantize: type ") + type_traits(type).name + " not implemented");
    }
}

void quantize_row(uint32_t type, const float *, void *, int64_t) {
    fail(TACTIC_ERR_UNSUPPORTED, std::string("quantize: type ") + type_traits(type).name + " not implemented");
}
uint32_t vec_dot_type(uint32_t) { return GGML_F32; }
void quantize_activation(uint32_t, const float *x, void *y, int64_t n) { std::memcpy(y, x, size_t(n) * 4); }
float vec_dot(uint32_t type, int64_t n, const void *w, const void *a) {
    thread_local std::vector<float> tmp;
    tmp.resize(size_t(n));
    dequantize_row(type, w, tmp.data(), n);
    const float *x = static_cast<const float *>(a);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += double(tmp[size_t(i)]) * x[i];
    return float(s);
}

}  // namespace tactic
