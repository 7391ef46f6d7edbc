// Byte layouts of the ggml block formats (FORMATS.md §2.1), shared by the scalar and
// SIMD kernels of quant/. Internal to the engine.
//
// Weight blocks come from a mapped file and user buffers, so every struct is made of
// bytes only (alignment 1) and f16 fields are read through load_f16(). Q8_K is the
// runtime's own activation format, always in buffers it allocates, so it keeps its
// native f32/i16 fields.
#pragma once

#include <cstdint>
#include <cstring>

#include "../common.h"
#include "../quant.h"

namespace tactic {
namespace q {

constexpr int QK = 32;    // elements of a "legacy" block (Q4_0 ... Q8_1)
constexpr int QK_K = 256; // elements of a K-quant super-block

struct BlockQ4_0 { uint8_t d[2]; uint8_t qs[16]; };
struct BlockQ4_1 { uint8_t d[2]; uint8_t m[2]; uint8_t qs[16]; };
struct BlockQ5_0 { uint8_t d[2]; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ5_1 { uint8_t d[2]; uint8_t m[2]; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ8_0 { uint8_t d[2]; int8_t qs[32]; };
struct BlockQ8_1 { uint8_t d[2]; uint8_t s[2]; int8_t qs[32]; };
struct BlockQ4_K { uint8_t d[2]; uint8_t dmin[2]; uint8_t scales[12]; uint8_t qs[128]; };
struct BlockQ5_K { uint8_t d[2]; uint8_t dmin[2]; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; };
struct BlockQ6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint8_t d[2]; };
struct BlockQ8_K { float d; int8_t qs[256]; int16_t bsums[16]; };

static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 layout");
static_assert(sizeof(BlockQ4_1) == 20, "Q4_1 layout");
static_assert(sizeof(BlockQ5_0) == 22, "Q5_0 layout");
static_assert(sizeof(BlockQ5_1) == 24, "Q5_1 layout");
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 layout");
static_assert(sizeof(BlockQ8_1) == 36, "Q8_1 layout");
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K layout");
static_assert(sizeof(BlockQ5_K) == 176, "Q5_K layout");
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K layout");
static_assert(sizeof(BlockQ8_K) == 292, "Q8_K layout");

inline float load_f16(const uint8_t *p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return f16_to_f32(h);
}
inline void store_f16(uint8_t *p, float f) {
    const uint16_t h = f32_to_f16(f);
    std::memcpy(p, &h, 2);
}
inline uint32_t load_u32(const uint8_t *p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block (§2.2).
inline void scale_min_k4(int j, const uint8_t *s, uint8_t *sc, uint8_t *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// Round half to even, as ggml's nearest_int (valid for |x| < 2^22; callers clamp).
inline int nearest_int(float x) {
    float v = x + 12582912.f;
    int32_t i;
    std::memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

// ---- kernels shared between quant/*.cpp (scalar versions live in vec_dot.cpp) ----

// Activation quantizers (the formats vec_dot consumes). Identical bytes on every path.
void quantize_act_q8_0(const float *x, BlockQ8_0 *y, int64_t n);
void quantize_act_q8_1(const float *x, BlockQ8_1 *y, int64_t n);
void quantize_act_q8_K(const float *x, BlockQ8_K *y, int64_t n);

VecDotFn vec_dot_scalar(uint32_t weight_type);  // nullptr if unsupported
DotTileFn dot_tile_scalar(uint32_t weight_type);
#if defined(TACTIC_X86)
VecDotFn vec_dot_avx2(uint32_t weight_type);    // nullptr if no AVX2 kernel for the type
DotTileFn dot_tile_avx2(uint32_t weight_type);
VecDotFn vec_dot_avx512(uint32_t weight_type);  // K-quants; nullptr for the rest (AVX2 kernels)
DotTileFn dot_tile_avx512(uint32_t weight_type);
// legacy types, else nullptr; packed: weights as repack_rows_avx512 wrote them
DotTileFn dot_tile_regrouped_avx512(uint32_t weight_type, bool packed);
// with_sums: Q8_1 rows (Q4_1/Q5_1 weights), else Q8_0 rows
size_t regrouped_act_row_size(bool with_sums, int64_t n);
void regroup_act(bool with_sums, int64_t n, const void *a, void *dst);
void quantize_act_q8_0_avx2(const float *x, BlockQ8_0 *y, int64_t n);
void quantize_act_q8_1_avx2(const float *x, BlockQ8_1 *y, int64_t n);
void quantize_act_q8_K_avx2(const float *x, BlockQ8_K *y, int64_t n);
bool cpu_has_avx2_fma();
#endif

}  // namespace q
}  // namespace tactic
