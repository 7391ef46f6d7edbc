// Per-block phase timestamps of Tactic's step kernels, for finding where a step's time goes
// (scripts/gpu_tactic_trace.py). Compiled in only with -DTACTIC_STEP_TRACE (cmake
// -DTACTIC_STEP_TRACE=ON): a normal build's marks are empty. Internal to native/cuda.
#pragma once

#include <cstdint>

namespace tactic {
namespace cuda {

constexpr int kTraceBlocks = 1024, kTraceMarks = 24;

#ifdef TACTIC_STEP_TRACE
// One table per translation unit (each kernel's file exports its own, step_trace_*): thread 0
// of block `blk` writes the global timer (ns) at mark `m`; the last launch's values stay.
static __device__ unsigned long long g_step_trace[kTraceBlocks][kTraceMarks];
__device__ __forceinline__ void trace_mark(int blk, int m) {
    if (threadIdx.x == 0 && blk < kTraceBlocks) {
        unsigned long long t;
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
        g_step_trace[blk][m] = t;
    }
}
// A value in place of a timestamp (a count the phases depend on), thread 0's.
__device__ __forceinline__ void trace_value(int blk, int m, unsigned long long v) {
    if (threadIdx.x == 0 && blk < kTraceBlocks) g_step_trace[blk][m] = v;
}
#define TACTIC_TRACE_EXPORT(fn)                                                               \
    bool fn(uint64_t *out) {                                                                  \
        cudaMemcpyFromSymbol(out, g_step_trace, sizeof(g_step_trace));                        \
        static const unsigned long long zero[kTraceBlocks][kTraceMarks] = {};                 \
        return cudaMemcpyToSymbol(g_step_trace, zero, sizeof(zero)) == cudaSuccess;           \
    }
#else
__device__ __forceinline__ void trace_mark(int, int) {}
__device__ __forceinline__ void trace_value(int, int, unsigned long long) {}
#define TACTIC_TRACE_EXPORT(fn) \
    bool fn(uint64_t *) { return false; }
#endif

// (step_trace_fused, step_trace_score: declared in tactic_gpu.h, for the C ABI's hook)

}  // namespace cuda
}  // namespace tactic
