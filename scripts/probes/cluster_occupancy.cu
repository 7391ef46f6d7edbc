// Probe (session 13): how many thread-block clusters of 2-16 blocks the H200 can hold at once
// for a block shaped like Tactic's fused step (256 threads, 204 KB of dynamic shared memory,
// one block a multiprocessor). A cut exchanged through distributed shared memory needs one
// cluster per KV head (8 on the 8B shape) resident together.
// nvcc -arch=sm_90 -o cluster_occupancy cluster_occupancy.cu && ./cluster_occupancy
#include <cstdio>
#include <cuda_runtime.h>

__global__ void probe_kernel(float *out) {
    extern __shared__ float s[];
    s[threadIdx.x] = float(threadIdx.x);
    __syncthreads();
    if (out) out[blockIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
}

int main() {
    cudaDeviceProp p;
    cudaGetDeviceProperties(&p, 0);
    printf("%s: %d SMs\n", p.name, p.multiProcessorCount);
    const int smems[] = {208896, 104448, 0};
    cudaFuncSetAttribute(probe_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 208896);
    cudaFuncSetAttribute(probe_kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
    for (int smem : smems)
        for (int cs = 1; cs <= 16; cs *= 2) {
            cudaLaunchConfig_t cfg = {};
            cudaLaunchAttribute at[1];
            at[0].id = cudaLaunchAttributeClusterDimension;
            at[0].val.clusterDim.x = cs;
            at[0].val.clusterDim.y = 1;
            at[0].val.clusterDim.z = 1;
            cfg.gridDim = dim3(16 * 8);
            cfg.blockDim = dim3(256);
            cfg.dynamicSmemBytes = smem;
            cfg.attrs = at;
            cfg.numAttrs = 1;
            int n = -1;
            cudaError_t e = cudaOccupancyMaxActiveClusters(&n, probe_kernel, &cfg);
            printf("smem %6d B, cluster %2d: max active clusters %3d (%s)\n", smem, cs, n, cudaGetErrorString(e));
        }
    return 0;
}
