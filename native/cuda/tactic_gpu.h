// Tactic's GPU decode step as plain C++ (no CUDA type), for the C ABI's test and
// benchmark hook (api/api_cuda.cpp): host buffers in, the step run from a CUDA graph,
// results and (when benchmarking) stage timings out.
#pragma once

#include <cstdint>

namespace tactic {
namespace cuda {

struct TacticStepHost {
    const float *q = nullptr;                 // [n_head][head_dim]
    int n_head = 0, n_head_kv = 0, head_dim = 0, n_ctx = 0;
    const uint16_t *k = nullptr, *v = nullptr;  // f16 cache [n_head_kv][n_ctx][head_dim]
    int n_tokens = 0;                         // cached tokens, the new one included
    int c_begin = 0, c_end = 0;               // clustered range
    int cmax = 0;                             // clusters per KV head, at most
    const int32_t *order = nullptr;           // [n_head_kv][c_end - c_begin]: positions, cluster by cluster
    const int32_t *offsets = nullptr;         // [n_head_kv][cmax + 1]: cluster c = order[off[c], off[c+1])
    const int32_t *n_clusters = nullptr;      // [n_head_kv]
    const float *centroids = nullptr;         // [n_head_kv][cmax][head_dim] (stored as f16 on the GPU)
    float force_fraction = 0.1f, p = 0.9f, scale = 1.f;  // force_fraction 0: the mass target p
    float *out = nullptr;                     // [n_head][head_dim]
    int32_t *selected = nullptr;              // [n_head_kv][n_tokens]: positions attended
    int32_t *n_selected = nullptr;            // [n_head_kv]
    double *stage_ms = nullptr;               // [7]: score, select, union, attend, merge, whole step (ms), copies
};
void tactic_step_host(const TacticStepHost &a);

// A trace build's (-DTACTIC_STEP_TRACE) per-block phase timestamps of the last launches, 1024 x
// 24 values each (step_trace.cuh); false in other builds.
bool step_trace_fused(uint64_t *out);
bool step_trace_score(uint64_t *out);

}  // namespace cuda
}  // namespace tactic
