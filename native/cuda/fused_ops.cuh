// Device functions shared by a separate kernel and the fused kernel that does the same
// step inside another one (decode fusion: RMSNorm + activation quantization, the gated
// activation in the gate/up matvec's epilogue). Both call the same code, so a fused
// decode step gives the same bytes as the unfused one.
#pragma once

#include <cstdint>

#include "cuda_util.cuh"

namespace tactic {
namespace cuda {

// act(g) * u: SiLU, or GELU with the tanh approximation (cpu/ops.cpp's twins).
__device__ __forceinline__ float gated_value(float g, float u, bool gelu) {
    float a;
    if (gelu) {
        const float c = 0.79788456080286535588f;  // sqrt(2/pi)
        a = 0.5f * g * (1.0f + tanhf(c * g * (1.0f + 0.044715f * g * g)));
    } else {
        a = g / (1.0f + expf(-g));
    }
    return a * u;
}

// One row of RMSNorm by a block of THREADS threads: yr = xr / sqrt(mean(xr^2) + eps) * w.
template <int THREADS>
__device__ __forceinline__ void rms_norm_row(const float *__restrict__ xr, const float *__restrict__ w, int n,
                                             float eps, float *__restrict__ yr) {
    float ss = 0.f;
    for (int i = threadIdx.x; i < n; i += THREADS) ss = fmaf(xr[i], xr[i], ss);
    __shared__ float part[THREADS / 32];
    ss = warp_sum(ss);
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = ss;
    __syncthreads();
    float total = 0.f;
#pragma unroll
    for (int i = 0; i < THREADS / 32; i++) total += part[i];
    const float scale = rsqrtf(total / float(n) + eps);
    for (int i = threadIdx.x; i < n; i += THREADS) yr[i] = w ? xr[i] * scale * w[i] : xr[i] * scale;
}

}  // namespace cuda
}  // namespace tactic
