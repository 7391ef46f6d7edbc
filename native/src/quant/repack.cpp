// Load-time repacking of legacy-type weight rows for the AVX-512 tiles (quant.h,
// vec_dot_avx512.cpp: GroupLoad). Plain byte moves, compiled without SIMD flags.
#include <cstring>

#include "../common.h"
#include "../quant.h"
#include "blocks.h"

namespace tactic {

namespace {

// A block's dword fields in the order the tiles read them: the quants (nq dwords from
// qs), the fifth bits (a dword at qh, or none), the (d, m) dword at 0 for types with a
// min; types without one end with their f16 scale at 0.
struct Layout {
    size_t size;
    int qs, nq, qh;
    bool min;
};

bool layout_of(uint32_t type, Layout &l) {
    switch (type) {
        case GGML_Q4_0: l = {sizeof(q::BlockQ4_0), 2, 4, -1, false}; return true;
        case GGML_Q5_0: l = {sizeof(q::BlockQ5_0), 6, 4, 2, false}; return true;
        case GGML_Q8_0: l = {sizeof(q::BlockQ8_0), 2, 8, -1, false}; return true;
        case GGML_Q4_1: l = {sizeof(q::BlockQ4_1), 4, 4, -1, true}; return true;
        case GGML_Q5_1: l = {sizeof(q::BlockQ5_1), 8, 4, 4, true}; return true;
        default: return false;
    }
}

}  // namespace

bool can_repack(uint32_t weight_type) {
    Layout l;
    return layout_of(weight_type, l) && dot_tile_regrouped(weight_type, 3) != nullptr;
}

void repack_rows(uint32_t weight_type, int64_t n, int64_t rows, const void *src, size_t row_bytes, void *dst) {
    Layout l;
    TACTIC_CHECK(layout_of(weight_type, l), TACTIC_ERR_UNSUPPORTED, "repack_rows: not a legacy block type");
    constexpr int kGroup = 16;
    const int64_t nb = n / 32;
    int offs[10], nf = 0;
    for (int k = 0; k < l.nq; k++) offs[nf++] = l.qs + 4 * k;
    if (l.qh >= 0) offs[nf++] = l.qh;
    if (l.min) offs[nf++] = 0;
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *row = static_cast<const uint8_t *>(src) + size_t(r) * row_bytes;
        uint8_t *out = static_cast<uint8_t *>(dst) + size_t(r) * row_bytes;
        for (int64_t g0 = 0; g0 < nb; g0 += kGroup) {
            const int L = int(nb - g0 < kGroup ? nb - g0 : kGroup);
            const uint8_t *blocks = row + size_t(g0) * l.size;
            uint8_t *o = out + size_t(g0) * l.size;
            for (int f = 0; f < nf; f++)
                for (int b = 0; b < L; b++) std::memcpy(o + size_t(f) * 4 * L + 4 * b, blocks + b * l.size + offs[f], 4);
            if (!l.min)
                for (int b = 0; b < L; b++) std::memcpy(o + size_t(nf) * 4 * L + 2 * b, blocks + b * l.size, 2);
        }
    }
}

}  // namespace tactic
