// The decode activations' 8-bit quantizers on the device, one warp a group: the CPU's
// bytes (quant/quantize.cpp). Shared by the matvec's quantize kernels and fused epilogues
// (matvec_q8.cu) and decode attention's merge (attention_decode_mma.cu), so that every path
// writes the same int8 blocks. Internal to native/cuda.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "cuda_ops.cuh"
#include "cuda_util.cuh"

namespace tactic {
namespace cuda {

// Q8_K, a warp per 256 values (group g of x): scale from the signed extreme (the first
// one of the largest magnitude, as the CPU's loop finds it), d = 1 / (-127 / max), q in
// [-128, 127], sums of each 16 (bsums) kept as floats.
// With f16 set, the dequantized values d * q are written there instead (prefill: the
// GEMM's f16 input then carries the CPU's activation rounding).
__device__ __forceinline__ void quantize_q8k_group(const float *x, int g, int lane, const Q8Act &a,
                                                   __half *__restrict__ f16) {
    const float4 *xp = reinterpret_cast<const float4 *>(x + int64_t(g) * 256 + 8 * lane);
    const float4 u = xp[0], w = xp[1];
    const float v[8] = {u.x, u.y, u.z, u.w, w.x, w.y, w.z, w.w};
    float best = 0.f;
    int bi = 1 << 30;
#pragma unroll
    for (int i = 0; i < 8; i++)
        if (fabsf(v[i]) > best) best = fabsf(v[i]), bi = 8 * lane + i;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ob = __shfl_xor_sync(0xffffffffu, best, o);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ob > best || (ob == best && oi < bi)) best = ob, bi = oi;
    }
    if (f16) {
        const float mx = x[int64_t(g) * 256 + bi], iscale = -127.f / mx, d = 1.f / iscale;
#pragma unroll
        for (int i = 0; i < 8; i++)
            f16[int64_t(g) * 256 + 8 * lane + i] =
                __float2half_rn(best > 0.f ? d * float(max(-128, min(127, __float2int_rn(iscale * v[i])))) : 0.f);
        return;
    }
    int8_t *q = a.q + int64_t(g) * 256 + 8 * lane;
    if (!(best > 0.f)) {  // zero (or NaN) block: all zero, as the CPU writes it
        *reinterpret_cast<uint2 *>(q) = make_uint2(0, 0);
        if (lane % 2 == 0) a.s[int64_t(g) * 16 + lane / 2] = 0.f;
        if (lane == 0) a.d[g] = 0.f;
        return;
    }
    const float mx = x[int64_t(g) * 256 + bi];
    const float iscale = -127.f / mx;
    int sum = 0;
    uint32_t packed[2] = {0, 0};
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int qi = max(-128, min(127, __float2int_rn(iscale * v[i])));
        sum += qi;
        packed[i / 4] |= uint32_t(qi & 255) << (8 * (i % 4));
    }
    *reinterpret_cast<uint2 *>(q) = make_uint2(packed[0], packed[1]);
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    if (lane % 2 == 0) a.s[int64_t(g) * 16 + lane / 2] = float(sum);
    if (lane == 0) a.d[g] = 1.f / iscale;
}

// Q8_0 / Q8_1, a warp per 32 values: d = amax / 127 stored as f16, q in [-127, 127];
// s = the sum of q (Q8_0, for Q4_0/Q5_0's offsets) or f16(d * sum q) (Q8_1's s).
__device__ __forceinline__ void quantize_q8b_group(const float *x, int g, int lane, bool q8_1,
                                                   const Q8Act &a, __half *__restrict__ f16) {
    const float v = x[int64_t(g) * 32 + lane];
    const float amax = warp_max(fabsf(v));
    const float d = amax / 127.f, id = amax != 0.f ? 127.f / amax : 0.f;
    const int qi = max(-127, min(127, __float2int_rn(v * id)));
    if (f16) {
        f16[int64_t(g) * 32 + lane] = __float2half_rn(__half2float(__float2half_rn(d)) * float(qi));
        return;
    }
    a.q[int64_t(g) * 32 + lane] = int8_t(qi);
    int sum = qi;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) {
        a.d[g] = __half2float(__float2half_rn(d));
        a.s[g] = q8_1 ? __half2float(__float2half_rn(float(sum) * d)) : float(sum);
    }
}

}  // namespace cuda
}  // namespace tactic
