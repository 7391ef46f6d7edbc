// Probe (session 14): can the fused Tactic step's cut (~11.7 us at 128K / 10%, during which the
// DRAM is idle) be used to pull the clusters it will stream into the L2?  Each of 128 blocks (one
// a multiprocessor, like the fused step) owns 1/128 of a step's runs (10% of a 512 MB K + V buffer
// as scattered 4 KB runs, a cluster's K or V rows). A step: prefetch the first `pf` share of the
// block's runs into the L2 (cp.async.bulk.prefetch.L2, one instruction a run), spin `cut` us (the
// cut), then stream every run into a shared-memory ring with cp.async (~192 KB in flight a block,
// as the fused step). Consecutive steps read disjoint tenths of the buffer, so nothing is left
// in the L2 from the step before. Prints the step's time and the streaming phase's (max over
// blocks) for each pf and cut.
// nvcc -O3 -arch=sm_90 -o l2_prefetch l2_prefetch.cu && ./l2_prefetch
#include <cstdio>
#include <cstdint>
#include <vector>
#include <algorithm>
#include <random>
#include <cuda_runtime.h>

constexpr int kThreads = 256, kRunB = 4096, kChunkB = 16384, kRing = 12;  // 12 x 16 KB = 192 KB

__device__ __forceinline__ uint64_t gtimer() {
    uint64_t t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

__global__ void __launch_bounds__(kThreads, 1) step(const char *__restrict__ buf, const int *__restrict__ runs, int per,
                                                     int n_pf, long long spin_cycles, unsigned long long *__restrict__ t_out) {
    extern __shared__ __align__(16) char ring[];
    const int tid = threadIdx.x;
    const int *my = runs + blockIdx.x * per;
    const uint64_t t0 = gtimer();
#if __CUDA_ARCH__ >= 900
    for (int r = tid; r < n_pf; r += kThreads) {
        const char *p = buf + size_t(my[r]) * kRunB;
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(kRunB) : "memory");
    }
#endif
    const long long c0 = clock64();
    while (clock64() - c0 < spin_cycles) {
    }
    __syncthreads();
    const uint64_t t1 = gtimer();
    // stream: chunk c = runs 4c .. 4c + 3; thread t copies 64 B of it (4 x 16 B) into ring slot c % kRing
    const int n_chunks = per * kRunB / kChunkB;
    auto issue = [&](int c) {
        const int run = 4 * c + tid / 64, off = (tid % 64) * 64;
        const char *src = buf + size_t(my[run]) * kRunB + off;
        const uint32_t dst = uint32_t(__cvta_generic_to_shared(ring + (c % kRing) * kChunkB + tid * 64));
#pragma unroll
        for (int i = 0; i < 4; i++)
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst + 16 * i), "l"(src + 16 * i) : "memory");
    };
    for (int c = 0; c < kRing - 1; c++) {
        if (c < n_chunks) issue(c);
        asm volatile("cp.async.commit_group;" ::: "memory");
    }
    for (int c = 0; c < n_chunks; c++) {
        asm volatile("cp.async.wait_group %0;" ::"n"(kRing - 2) : "memory");
        if (c + kRing - 1 < n_chunks) issue(c + kRing - 1);
        asm volatile("cp.async.commit_group;" ::: "memory");
    }
    asm volatile("cp.async.wait_group 0;" ::: "memory");
    __syncthreads();
    if (tid == 0) {
        t_out[blockIdx.x * 3 + 0] = t0;
        t_out[blockIdx.x * 3 + 1] = t1;
        t_out[blockIdx.x * 3 + 2] = gtimer();
    }
}

int main() {
    const size_t total = size_t(536870912);  // the 8B shape's K + V at 128K tokens (one layer)
    const int n_all = int(total / kRunB), blocks = 128;
    const int per = (n_all / 10) / blocks / 4 * 4;  // a block's runs a step (a whole number of chunks)
    char *buf;
    int *d_runs;
    unsigned long long *d_t;
    cudaMalloc(&buf, total);
    cudaMemset(buf, 1, total);
    std::vector<int> idx(n_all);
    for (int i = 0; i < n_all; i++) idx[i] = i;
    std::mt19937 rng(7);
    std::shuffle(idx.begin(), idx.end(), rng);
    const int step_runs = blocks * per;  // tenth k: idx[k * step_runs ...], each block's runs in address order
    for (int k = 0; k < 10; k++)
        for (int b = 0; b < blocks; b++)
            std::sort(idx.begin() + k * step_runs + b * per, idx.begin() + k * step_runs + (b + 1) * per);
    cudaMalloc(&d_runs, size_t(n_all) * sizeof(int));
    cudaMemcpy(d_runs, idx.data(), size_t(n_all) * sizeof(int), cudaMemcpyHostToDevice);
    cudaMalloc(&d_t, blocks * 3 * sizeof(unsigned long long));
    const int smem = kRing * kChunkB;
    cudaFuncSetAttribute(step, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    int clk_khz = 0;
    cudaDeviceGetAttribute(&clk_khz, cudaDevAttrClockRate, 0);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    printf("a step: %d blocks x %d runs of %d B = %.1f MB; SM clock %.0f MHz\n", blocks, per, kRunB,
           double(step_runs) * kRunB / 1e6, clk_khz / 1e3);
    printf("%8s %6s %10s %12s %12s\n", "cut us", "pf", "step us", "stream us", "stream TB/s");
    std::vector<unsigned long long> th(blocks * 3);
    for (float cut : {0.f, 6.f, 12.f})
        for (float pf : {0.f, 0.25f, 0.5f, 0.75f, 1.f}) {
            const int n_pf = int(pf * per);
            const long long cyc = (long long)(cut * clk_khz / 1e3);
            const int reps = 40;
            double stream_sum = 0;
            for (int it = 0; it < 10; it++)
                step<<<blocks, kThreads, smem>>>(buf, d_runs + (it % 10) * step_runs, per, n_pf, cyc, d_t);
            cudaEventRecord(e0);
            for (int it = 0; it < reps; it++)
                step<<<blocks, kThreads, smem>>>(buf, d_runs + (it % 10) * step_runs, per, n_pf, cyc, d_t);
            cudaEventRecord(e1);
            cudaEventSynchronize(e1);
            float ms = 0;
            cudaEventElapsedTime(&ms, e0, e1);
            // the streaming phase alone, separate launches (timer stamps): max end - max spin end
            for (int it = 0; it < reps; it++) {
                step<<<blocks, kThreads, smem>>>(buf, d_runs + (it % 10) * step_runs, per, n_pf, cyc, d_t);
                cudaMemcpy(th.data(), d_t, th.size() * sizeof(unsigned long long), cudaMemcpyDeviceToHost);
                unsigned long long s1 = 0, s2 = 0;
                for (int b = 0; b < blocks; b++) {
                    s1 = std::max(s1, th[b * 3 + 1]);
                    s2 = std::max(s2, th[b * 3 + 2]);
                }
                stream_sum += double(s2 - s1) / 1e3;
            }
            const double st = stream_sum / reps;
            printf("%8.1f %6.2f %10.2f %12.2f %12.2f\n", cut, pf, 1000.0 * ms / reps, st,
                   double(step_runs) * kRunB / st / 1e6);
        }
    cudaError_t e = cudaGetLastError();
    printf("%s\n", e == cudaSuccess ? "ok" : cudaGetErrorString(e));
    return 0;
}
