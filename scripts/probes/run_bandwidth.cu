// Probe (session 13): the read bandwidth of scattered runs, the access pattern of Tactic's
// streaming (a selected cluster's K rows are one run of ~16 x 256 B, its V rows another),
// against one sequential read of the same bytes. Each block reads whole runs (16-byte loads,
// 4 in flight a thread) and folds them into one word so the loads cannot be dropped.
// nvcc -O3 -arch=sm_90 -o run_bandwidth run_bandwidth.cu && ./run_bandwidth
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <vector>
#include <algorithm>
#include <random>
#include <cuda_runtime.h>

__global__ void read_runs(const uint4 *__restrict__ buf, const int *__restrict__ runs, int n_runs, int run_words,
                          unsigned *__restrict__ sink) {
    unsigned acc = 0;
    const int wpb = blockDim.x;
    // runs are dealt out round robin over the grid; a block's threads cover a run together
    for (int r = blockIdx.x; r < n_runs; r += gridDim.x) {
        const uint4 *p = buf + size_t(runs[r]) * run_words;
        for (int w = threadIdx.x; w < run_words; w += wpb) {
            uint4 v;
            asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                         : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p + w));
            acc ^= v.x ^ v.y ^ v.z ^ v.w;
        }
    }
    if (acc == 0x12345678u) sink[0] = acc;
}

int main() {
    const size_t total = size_t(536870912);  // the 8B shape's K + V at 128K tokens (one layer)
    const size_t want = total / 10;           // 10% of it
    uint4 *buf;
    unsigned *sink;
    cudaMalloc(&buf, total);
    cudaMalloc(&sink, 4);
    cudaMemset(buf, 1, total);
    int nsm = 0;
    cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, 0);
    std::mt19937 rng(7);
    const int run_bytes_list[] = {1024, 2048, 4096, 8192, 16384, 65536};
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    printf("%8s %8s %6s %10s %10s\n", "run B", "order", "grid", "us", "GB/s");
    for (int rb : run_bytes_list)
        for (int order = 0; order < 2; order++) {
            // ten disjoint sets of 10% each (the whole buffer, >> the L2): pass k reads set k % 10
            const int n_runs = int(want / rb), n_all = 10 * n_runs;
            std::vector<int> idx(n_all);
            for (int i = 0; i < n_all; i++) idx[i] = i;
            if (order) {
                std::shuffle(idx.begin(), idx.end(), rng);
                for (int k = 0; k < 10; k++) std::sort(idx.begin() + k * n_runs, idx.begin() + (k + 1) * n_runs);
            }
            int *d_runs;
            cudaMalloc(&d_runs, n_all * sizeof(int));
            cudaMemcpy(d_runs, idx.data(), n_all * sizeof(int), cudaMemcpyHostToDevice);
            for (int gm : {1, 2, 4, 8}) {
                const int grid = nsm * gm, threads = 256;
                for (int it = 0; it < 10; it++) read_runs<<<grid, threads>>>(buf, d_runs + it * n_runs, n_runs, rb / 16, sink);
                cudaEventRecord(e0);
                const int reps = 40;
                for (int it = 0; it < reps; it++)
                    read_runs<<<grid, threads>>>(buf, d_runs + (it % 10) * n_runs, n_runs, rb / 16, sink);
                cudaEventRecord(e1);
                cudaEventSynchronize(e1);
                float ms = 0;
                cudaEventElapsedTime(&ms, e0, e1);
                const double us = 1000.0 * ms / reps;
                printf("%8d %8s %6d %10.2f %10.1f\n", rb, order ? "scatter" : "seq", grid, us, double(n_runs) * rb / us / 1e3);
            }
            cudaFree(d_runs);
        }
    printf("each pass reads %zu bytes; consecutive passes read disjoint tenths of a %zu-byte buffer\n", want, total);
    return 0;
}
