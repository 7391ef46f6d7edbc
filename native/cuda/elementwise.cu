// Element-wise steps of the transformer pass on the GPU (CPU twins in cpu/ops.cpp).
// Each kernel follows pdl.cuh's protocol: pdl_wait() before anything (all it reads may
// come from the kernel before), then pdl_trigger(); launched with launch_pdl.
#include <cmath>

#include "cuda_ops.cuh"
#include "cuda_util.cuh"
#include "fused_ops.cuh"
#include "pdl.cuh"

namespace tactic {
namespace cuda {

namespace {

constexpr int kThreads = 256;
unsigned blocks_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }

__global__ void add_bias_kernel(float *__restrict__ y, int ld, const float *__restrict__ b, int width, int n) {
    pdl_wait();
    pdl_trigger();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= int64_t(n) * width) return;
    y[(i / width) * ld + i % width] += b[i % width];
}

__global__ void add_kernel(float *__restrict__ x, const float *__restrict__ y, int64_t n) {
    pdl_wait();
    pdl_trigger();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) x[i] += y[i];
}

__global__ void gated_kernel(float *__restrict__ g, const float *__restrict__ u, int64_t n, int gelu) {
    pdl_wait();
    pdl_trigger();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) g[i] = gated_value(g[i], u[i], gelu != 0);
}

__global__ void softcap_kernel(float *__restrict__ x, int64_t n, float cap) {
    pdl_wait();
    pdl_trigger();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) x[i] = cap * tanhf(x[i] / cap);
}

__global__ void to_f16_kernel(const float *__restrict__ x, int64_t n, __half *__restrict__ y) {
    pdl_wait();
    pdl_trigger();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __float2half_rn(x[i]);
}

}  // namespace

void add_bias_dev(float *y, int ld, const float *bias, int width, int n, cudaStream_t s) {
    const int64_t total = int64_t(n) * width;
    if (total) launch_pdl(add_bias_kernel, dim3(blocks_for(total)), dim3(kThreads), 0, s, y, ld, bias, width, n);
}
void add_dev(float *x, const float *y, int64_t n, cudaStream_t s) {
    if (n) launch_pdl(add_kernel, dim3(blocks_for(n)), dim3(kThreads), 0, s, x, y, n);
}
void gated_act_dev(float *gate, const float *up, int64_t n, bool gelu, cudaStream_t s) {
    if (n) launch_pdl(gated_kernel, dim3(blocks_for(n)), dim3(kThreads), 0, s, gate, up, n, gelu ? 1 : 0);
}
void softcap_dev(float *x, int64_t n, float cap, cudaStream_t s) {
    if (n) launch_pdl(softcap_kernel, dim3(blocks_for(n)), dim3(kThreads), 0, s, x, n, cap);
}
void to_f16_dev(const float *x, int64_t n, __half *y, cudaStream_t s) {
    if (n) launch_pdl(to_f16_kernel, dim3(blocks_for(n)), dim3(kThreads), 0, s, x, n, y);
}

}  // namespace cuda
}  // namespace tactic
