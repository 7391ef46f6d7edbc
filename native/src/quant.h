// Block formats of the ggml tensor types: sizes, dequantization, the runtime's own
// quantizers, and the quantized dot products matmul is built from.
//
// Every kernel has a scalar reference; SIMD versions (AVX2/FMA and AVX-512 VNNI, chosen
// at run time) are held equal to it by tests.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tactic {

enum GgmlType : uint32_t {
    GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q4_1 = 3, GGML_Q5_0 = 6, GGML_Q5_1 = 7,
    GGML_Q8_0 = 8, GGML_Q8_1 = 9, GGML_Q2_K = 10, GGML_Q3_K = 11, GGML_Q4_K = 12,
    GGML_Q5_K = 13, GGML_Q6_K = 14, GGML_Q8_K = 15, GGML_BF16 = 30,
};

struct TypeTraits {
    const char *name;      // "Q4_K"
    int block_size;        // elements per block (0: unknown / removed type)
    size_t type_size;      // bytes per block
    bool supported;        // dequantize + vec_dot implemented here
};

// Traits of any ggml type id; block_size == 0 for ids that are unknown or removed.
const TypeTraits &type_traits(uint32_t type);
// Bytes of n elements (n must be a multiple of the block size; checked by callers).
size_t row_size(uint32_t type, int64_t n);

// y[0..n) = dequantize(x). n a multiple of the block size.
void dequantize_row(uint32_t type, const void *x, float *y, int64_t n);

// The runtime's own quantizers (reference quality, as ggml's *_ref functions).
// Supported targets: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, Q8_K.
void quantize_row(uint32_t type, const float *x, void *y, int64_t n);
// Whether quantize_row handles `type`.
bool can_quantize(uint32_t type);

// The activation format the quantized dot product of `weight_type` consumes:
// Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for K-quants, F32 for float types.
uint32_t vec_dot_type(uint32_t weight_type);
// Quantize an activation row x[n] into the vec_dot_type format of weight_type.
// impl as vec_dot_kernel; every implementation writes the same bytes.
void quantize_activation(uint32_t weight_type, const float *x, void *y, int64_t n, int impl = 0);
// dot(weight row, activation row already in vec_dot_type format) over n elements.
float vec_dot(uint32_t weight_type, int64_t n, const void *w, const void *a);

// The dot product kernel of a weight type, resolved once (hot loops call it directly).
// impl: 0 = the current choice (set_kernel_impl), 1 = scalar, 2 = AVX2, 3 = AVX-512
// (each falls back to the next lower one for types it has no kernel for).
using VecDotFn = float (*)(int64_t n, const void *w, const void *a);
VecDotFn vec_dot_kernel(uint32_t weight_type, int impl = 0);

// A tile of dot products, the inner kernel of matmul: out[t * ldo + r] = dot(weight row r,
// activation row t) for r < nr, t < nt; weight rows are w_stride bytes apart, activation
// rows (vec_dot_type format) a_stride bytes. SIMD tiles unpack each weight block once
// for several tokens. a_scale may be null; for Q8_0 activations it may hold their block
// scales as f32, a_scale[t * (n / 32) + i] (saves an f16 conversion per block and token).
using DotTileFn = void (*)(int64_t n, const void *w, size_t w_stride, int nr, const void *a, size_t a_stride,
                           const float *a_scale, int nt, float *out, int64_t ldo);
DotTileFn dot_tile_kernel(uint32_t weight_type, int impl = 0);

// The AVX-512 prefill tiles of the legacy types (Q4_0 ... Q5_1) read their Q8_0 / Q8_1
// activations regrouped (16 blocks side by side, see vec_dot_avx512.cpp): rows of
// regrouped_act_size(weight_type, n) bytes made by regroup_activation from the
// quantized rows, and no a_scale. nullptr when the type, impl or CPU has no such tile.
DotTileFn dot_tile_regrouped(uint32_t weight_type, int impl = 0, bool packed = false);

// Weights of those types repacked once, at load, so that the tiles load each group's
// fields (16 blocks side by side) instead of gathering them on every call: `rows` rows
// of n elements, row_bytes apart in src, to dst (the same size and row offsets; rows keep
// their groups of 16 blocks, each field of a group contiguous). Only for types with
// dot_tile_regrouped; tiles of packed rows give exactly the bytes of the gathered ones.
bool can_repack(uint32_t weight_type);
void repack_rows(uint32_t weight_type, int64_t n, int64_t rows, const void *src, size_t row_bytes, void *dst);
size_t regrouped_act_size(uint32_t weight_type, int64_t n);
void regroup_activation(uint32_t weight_type, int64_t n, const void *act_row, void *dst);

// Implementation choice (for tests and benchmarks): 0 = best available, 1 = scalar,
// 2 = AVX2, 3 = AVX-512. Returns false if it is not available on this CPU.
bool set_kernel_impl(int impl);
int kernel_impl();
const char *simd_name();   // "avx512", "avx2" or "scalar"
// Whether this CPU can run the AVX2 kernels at all.
bool simd_available();
// Whether implementation `impl` (as set_kernel_impl) can run on this CPU.
bool kernel_impl_available(int impl);

}  // namespace tactic
