// The runtime's quantizers: reference-quality weight quantizers (the same algorithms
// as ggml's quantize_row_*_ref, K-quants with the iterative scale/min search) and the
// activation quantizers the dot products consume (Q8_0, Q8_1, Q8_K).
#include <algorithm>
#include <cmath>
#include <string>

#include "../quant.h"
#include "blocks.h"

namespace tactic {

using namespace q;

namespace {

// float -> int truncation that is defined for any input (NaN and huge values give 0).
inline int trunc_int(float v) { return (v > -1e9f && v < 1e9f) ? int(v) : 0; }
// float -> int rounding half away from zero (C roundf), defined for any input.
inline int round_away(float v) { return (v > -1e9f && v < 1e9f) ? int(std::round(v)) : 0; }
// nearest_int, but defined for any input (values beyond ±2^22 are clamped first).
inline int nearest(float v) {
    if (!(v > -4194303.f)) v = v != v ? 0.f : -4194303.f;
    if (v > 4194303.f) v = 4194303.f;
    return nearest_int(v);
}

// ---- legacy 32-element blocks -------------------------------------------------------

void quant_q4_0(const float *x, BlockQ4_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float amax = 0.f, max = 0.f;  // max: the signed value of largest magnitude
        for (int j = 0; j < QK; j++)
            if (std::fabs(x[j]) > amax) { amax = std::fabs(x[j]); max = x[j]; }
        const float d = max / -8.f, id = d != 0.f ? 1.f / d : 0.f;
        store_f16(y[i].d, d);
        for (int j = 0; j < 16; j++) {
            const int a = std::min(15, trunc_int(x[j] * id + 8.5f));
            const int b = std::min(15, trunc_int(x[j + 16] * id + 8.5f));
            y[i].qs[j] = uint8_t(a | (b << 4));
        }
    }
}

void quant_q4_1(const float *x, BlockQ4_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float min = x[0], max = x[0];
        for (int j = 1; j < QK; j++) { min = std::min(min, x[j]); max = std::max(max, x[j]); }
        const float d = (max - min) / 15.f, id = d != 0.f ? 1.f / d : 0.f;
        store_f16(y[i].d, d);
        store_f16(y[i].m, min);
        for (int j = 0; j < 16; j++) {
            const int a = std::min(15, trunc_int((x[j] - min) * id + 0.5f));
            const int b = std::min(15, trunc_int((x[j + 16] - min) * id + 0.5f));
            y[i].qs[j] = uint8_t(a | (b << 4));
        }
    }
}

void quant_q5_0(const float *x, BlockQ5_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float amax = 0.f, max = 0.f;
        for (int j = 0; j < QK; j++)
            if (std::fabs(x[j]) > amax) { amax = std::fabs(x[j]); max = x[j]; }
        const float d = max / -16.f, id = d != 0.f ? 1.f / d : 0.f;
        store_f16(y[i].d, d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            const int a = std::min(31, trunc_int(x[j] * id + 16.5f));
            const int b = std::min(31, trunc_int(x[j + 16] * id + 16.5f));
            y[i].qs[j] = uint8_t((a & 15) | ((b & 15) << 4));
            qh |= uint32_t((a >> 4) & 1) << j;
            qh |= uint32_t((b >> 4) & 1) << (j + 16);
        }
        std::memcpy(y[i].qh, &qh, 4);
    }
}

void quant_q5_1(const float *x, BlockQ5_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float min = x[0], max = x[0];
        for (int j = 1; j < QK; j++) { min = std::min(min, x[j]); max = std::max(max, x[j]); }
        const float d = (max - min) / 31.f, id = d != 0.f ? 1.f / d : 0.f;
        store_f16(y[i].d, d);
        store_f16(y[i].m, min);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            const int a = std::min(31, trunc_int((x[j] - min) * id + 0.5f));
            const int b = std::min(31, trunc_int((x[j + 16] - min) * id + 0.5f));
            y[i].qs[j] = uint8_t((a & 15) | ((b & 15) << 4));
            qh |= uint32_t((a >> 4) & 1) << j;
            qh |= uint32_t((b >> 4) & 1) << (j + 16);
        }
        std::memcpy(y[i].qh, &qh, 4);
    }
}

// Weight Q8_0 (ggml's reference): d = amax/127, q = roundf(x / d).
void quant_q8_0_ref(const float *x, BlockQ8_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float amax = 0.f;
        for (int j = 0; j < QK; j++) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.f, id = d != 0.f ? 1.f / d : 0.f;
        store_f16(y[i].d, d);
        for (int j = 0; j < QK; j++) y[i].qs[j] = int8_t(std::clamp(round_away(x[j] * id), -127, 127));
    }
}

// ---- K-quants -----------------------------------------------------------------------

// Fit x[i] ≈ scale·L[i] − min with L in [0, nmax], weighted least squares over a few
// candidate scales (ggml's make_qkx2_quants). Returns the scale, sets *the_min.
float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                    uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        min = std::min(min, x[i]);
        max = std::max(max, x[i]);
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        std::fill(L, L + n, 0);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min), scale = 1 / iscale, best_error = 0;
    for (int i = 0; i < n; i++) {
        L[i] = uint8_t(std::clamp(nearest(iscale * (x[i] - min)), 0, nmax));
        const float diff = scale * L[i] + min - x[i];
        best_error += w[i] * diff * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = std::clamp(nearest(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = uint8_t(l);
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                const float diff = this_scale * Laux[i] + this_min - x[i];
                cur_error += w[i] * diff * diff;
            }
            if (cur_error < best_error) {
                std::copy(Laux, Laux + n, L);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

// Q4_K / Q5_K share everything but the bit width (nmax 15 or 31) and the packing.
void quant_k45(const float *x, int nmax, float rmin, int nstep, uint8_t *dd, uint8_t *scales, uint8_t *L) {
    float weights[32], mins[8], sc[8];
    uint8_t Laux[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
        const float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + std::fabs(xs[l]);
        sc[j] = fit_scale_min(32, nmax, xs, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep);
        max_scale = std::max(max_scale, sc[j]);
        max_min = std::max(max_min, mins[j]);
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    std::memset(scales, 0, 12);
    for (int j = 0; j < 8; j++) {
        const uint8_t ls = uint8_t(std::min(63, nearest(inv_scale * sc[j])));
        const uint8_t lm = uint8_t(std::min(63, nearest(inv_min * mins[j])));
        if (j < 4) {
            scales[j] = ls;
            scales[j + 4] = lm;
        } else {
            scales[j + 4] = uint8_t((ls & 15) | ((lm & 15) << 4));
            scales[j - 4] |= uint8_t((ls >> 4) << 6);
            scales[j] |= uint8_t((lm >> 4) << 6);
        }
    }
    store_f16(dd, max_scale / 63.f);
    store_f16(dd + 2, max_min / 63.f);
    // Re-derive the levels against the scales actually stored (f16 and 6-bit rounded).
    const float d = load_f16(dd), dmin = load_f16(dd + 2);
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        scale_min_k4(j, scales, &s, &m);
        const float ds = d * s;
        if (ds == 0.f) continue;
        const float dm = dmin * m;
        for (int l = 0; l < 32; l++) L[32 * j + l] = uint8_t(std::clamp(nearest((x[32 * j + l] + dm) / ds), 0, nmax));
    }
}

void quant_q4_k(const float *x, BlockQ4_K *y, int64_t nb) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        quant_k45(x, 15, -1.f, 20, y[i].d, y[i].scales, L);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) y[i].qs[32 * c + l] = uint8_t(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

void quant_q5_k(const float *x, BlockQ5_K *y, int64_t nb) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        quant_k45(x, 31, -0.5f, 15, y[i].d, y[i].scales, L);
        std::memset(y[i].qh, 0, 32);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                const int a = L[64 * c + l], b = L[64 * c + 32 + l];
                y[i].qs[32 * c + l] = uint8_t((a & 15) | ((b & 15) << 4));
                y[i].qh[l] |= uint8_t(((a >> 4) << (2 * c)) | ((b >> 4) << (2 * c + 1)));
            }
    }
}

// Symmetric fit x ≈ scale·(L − nmax), weights x² (ggml's make_qx_quants, rmse_type 1).
float fit_scale_sym(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++)
        if (std::fabs(x[i]) > amax) { amax = std::fabs(x[i]); max = x[i]; }
    if (amax < 1e-15f) {
        std::fill(L, L + n, 0);
        return 0.f;
    }
    float iscale = -nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = std::clamp(nearest(iscale * x[i]), -nmax, nmax - 1);
        L[i] = int8_t(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0.f, best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = std::clamp(nearest(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) L[i] = int8_t(nmax + std::clamp(nearest(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

void quant_q6_k(const float *x, BlockQ6_K *y, int64_t nb) {
    int8_t L[QK_K];
    float scales[16];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < 16; ib++) {
            scales[ib] = fit_scale_sym(16, 32, x + 16 * ib, L + 16 * ib);
            if (std::fabs(scales[ib]) > max_abs_scale) {
                max_abs_scale = std::fabs(scales[ib]);
                max_scale = scales[ib];
            }
        }
        if (max_abs_scale < 1e-15f) {
            std::memset(&y[i], 0, sizeof(BlockQ6_K));
            continue;
        }
        const float iscale = -128.f / max_scale;
        store_f16(y[i].d, 1 / iscale);
        for (int ib = 0; ib < 16; ib++) y[i].scales[ib] = int8_t(std::min(127, nearest(iscale * scales[ib])));
        const float d = load_f16(y[i].d);
        for (int j = 0; j < 16; j++) {
            const float ds = d * y[i].scales[j];
            if (ds == 0.f) continue;
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] = int8_t(std::clamp(nearest(x[16 * j + ii] / ds), -32, 31) + 32);
        }
        for (int h = 0; h < 2; h++) {
            uint8_t *ql = y[i].ql + 64 * h, *qh = y[i].qh + 32 * h;
            const int8_t *Lh = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                const int q1 = Lh[l], q2 = Lh[l + 32], q3 = Lh[l + 64], q4 = Lh[l + 96];
                ql[l] = uint8_t((q1 & 15) | ((q3 & 15) << 4));
                ql[l + 32] = uint8_t((q2 & 15) | ((q4 & 15) << 4));
                qh[l] = uint8_t((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
            }
        }
    }
}

}  // namespace

// ---- activation quantizers (shared with the SIMD files through blocks.h) --------------

namespace q {

// As llama.cpp's x86 quantize_row_q8_0: id = 127/amax, round half to even.
void quantize_act_q8_0(const float *x, BlockQ8_0 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        float amax = 0.f;
        for (int j = 0; j < QK; j++) amax = std::max(amax, std::fabs(x[j]));
        const float id = amax != 0.f ? 127.f / amax : 0.f;
        store_f16(y[i].d, amax / 127.f);
        for (int j = 0; j < QK; j++) y[i].qs[j] = int8_t(std::clamp(nearest(x[j] * id), -127, 127));
    }
}

// Q8_0 plus s = d·Σq (what the Q4_1/Q5_1 dot products need for their min term).
void quantize_act_q8_1(const float *x, BlockQ8_1 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        float amax = 0.f;
        for (int j = 0; j < QK; j++) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.f, id = amax != 0.f ? 127.f / amax : 0.f;
        store_f16(y[i].d, d);
        int sum = 0;
        for (int j = 0; j < QK; j++) {
            y[i].qs[j] = int8_t(std::clamp(nearest(x[j] * id), -127, 127));
            sum += y[i].qs[j];
        }
        store_f16(y[i].s, float(sum) * d);
    }
}

// ggml's quantize_row_q8_K: scale from the signed extreme (so d may be negative).
void quantize_act_q8_K(const float *x, BlockQ8_K *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max = 0, amax = 0;
        for (int j = 0; j < QK_K; j++)
            if (std::fabs(x[j]) > amax) { amax = std::fabs(x[j]); max = x[j]; }
        if (!(amax > 0.f)) {  // zero (or NaN) block
            std::memset(&y[i], 0, sizeof(BlockQ8_K));
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; j++) y[i].qs[j] = int8_t(std::clamp(nearest(iscale * x[j]), -128, 127));
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += y[i].qs[16 * g + l];
            y[i].bsums[g] = int16_t(s);
        }
        y[i].d = 1 / iscale;
    }
}

}  // namespace q

bool can_quantize(uint32_t type) {
    switch (type) {
        case GGML_F32: case GGML_F16: case GGML_BF16: case GGML_Q4_0: case GGML_Q4_1: case GGML_Q5_0:
        case GGML_Q5_1: case GGML_Q8_0: case GGML_Q4_K: case GGML_Q5_K: case GGML_Q6_K: case GGML_Q8_K:
            return true;
        default: return false;
    }
}

void quantize_row(uint32_t type, const float *x, void *vy, int64_t n) {
    uint8_t *y = static_cast<uint8_t *>(vy);
    switch (type) {
        case GGML_F32: std::memcpy(y, x, size_t(n) * 4); return;
        case GGML_F16:
            for (int64_t i = 0; i < n; i++) store_f16(y + 2 * i, x[i]);
            return;
        case GGML_BF16:
            for (int64_t i = 0; i < n; i++) {
                const uint16_t h = f32_to_bf16(x[i]);
                std::memcpy(y + 2 * i, &h, 2);
            }
            return;
        case GGML_Q4_0: quant_q4_0(x, reinterpret_cast<BlockQ4_0 *>(y), n / QK); return;
        case GGML_Q4_1: quant_q4_1(x, reinterpret_cast<BlockQ4_1 *>(y), n / QK); return;
        case GGML_Q5_0: quant_q5_0(x, reinterpret_cast<BlockQ5_0 *>(y), n / QK); return;
        case GGML_Q5_1: quant_q5_1(x, reinterpret_cast<BlockQ5_1 *>(y), n / QK); return;
        case GGML_Q8_0: quant_q8_0_ref(x, reinterpret_cast<BlockQ8_0 *>(y), n / QK); return;
        case GGML_Q4_K: quant_q4_k(x, reinterpret_cast<BlockQ4_K *>(y), n / QK_K); return;
        case GGML_Q5_K: quant_q5_k(x, reinterpret_cast<BlockQ5_K *>(y), n / QK_K); return;
        case GGML_Q6_K: quant_q6_k(x, reinterpret_cast<BlockQ6_K *>(y), n / QK_K); return;
        case GGML_Q8_K: {
            // Our own buffers are aligned; a caller's may not be, so go through a copy.
            BlockQ8_K b;
            for (int64_t i = 0; i < n / QK_K; i++) {
                q::quantize_act_q8_K(x + i * QK_K, &b, QK_K);
                std::memcpy(y + size_t(i) * sizeof(b), &b, sizeof(b));
            }
            return;
        }
        default:
            fail(TACTIC_ERR_UNSUPPORTED,
                 std::string("quantize: tensor type ") + type_traits(type).name + " is not supported");
    }
}

}  // namespace tactic
