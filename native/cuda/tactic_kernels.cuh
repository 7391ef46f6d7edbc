// What the Tactic step's kernel files share (tactic_score.cu: A, the centroid scores;
// tactic_select.cu: B + C, the cuts and the lists; tactic_gpu.cu: D + E, the sparse
// attention and its merge, and the test/bench harness). Internal to native/cuda.
#pragma once

#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "cuda_util.cuh"
#include "tactic_gpu.cuh"

namespace tactic {
namespace cuda {

constexpr int kScoreWarps = 8;  // centroid scoring block
constexpr int kScore2Rows = 8;  // centroid rows in flight per lane (scores 2, 3; 4 the same blocks)

__device__ __forceinline__ void h8_to_f(const uint4 &w, float *f) {
    const uint32_t ws[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 t = __half22float2(*reinterpret_cast<const __half2 *>(&ws[i]));
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}

// Tensor-core pieces of the MMA variant (options().tactic_mma), sm_80+. Fragment layouts
// of mma.sync.m16n8k16 (f16 in, f32 accumulate), g = lane / 4, t = lane % 4:
//   A (16 x 16): a0 = (row g, cols 2t, 2t+1), a1 = (row g+8, ..), a2 = (row g, cols 2t+8, +9), a3 = (row g+8, ..);
//   B (16 x 8, k x n): b0 = (k 2t, 2t+1; n g), b1 = (k 2t+8, 2t+9; n g);
//   C (16 x 8): c0, c1 = (row g, cols 2t, 2t+1), c2, c3 = (row g+8, ..).
// ldmatrix.x4: lanes 8j..8j+7 give matrix j's row addresses; lane l receives (row l/4,
// cols 2(l%4), +1) of each, with .trans (rows 2(l%4), +1; col l/4).
__device__ __forceinline__ void ldsm4(uint32_t (&r)[4], uint32_t addr) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
#endif
}
__device__ __forceinline__ void ldsm4_t(uint32_t (&r)[4], uint32_t addr) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
#endif
}
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}
// x as f16 hi + lo (hi = x rounded, lo = the rest rounded): 22 bits of x's mantissa.
__device__ __forceinline__ void split_f16x2(float x0, float x1, uint32_t &hi, uint32_t &lo) {
    const __half2 h = __floats2half2_rn(x0, x1);
    const float2 hf = __half22float2(h);
    const __half2 l = __floats2half2_rn(x0 - hf.x, x1 - hf.y);
    hi = *reinterpret_cast<const uint32_t *>(&h);
    lo = *reinterpret_cast<const uint32_t *>(&l);
}

// The group's size as the kernels' template parameter G (1, 2, 4 or 8).
inline int g_of(int group) { return group <= 1 ? 1 : group <= 2 ? 2 : group <= 4 ? 4 : 8; }

// Blocks (per KV head) of the scoring kernels (2-4): their partials' count for the selection.
inline int score2_blocks(int D, int cmax) {
    const int per_block = kScoreWarps * (32 / (D / 8)) * kScore2Rows;
    return std::max(1, (cmax + per_block - 1) / per_block);
}

// tactic_select 3 and 4 read the scoring kernel's partials (the scoring kernels write them then).
inline bool select_from_parts(const TacticStepBufs &b) {
    return options().tactic_select >= 3 && b.sel_ws && b.spart;
}

// tactic_select 5 and 7 where they apply (head_dim 128, the spread kernel fits): the selection
// computes the centroid scores itself, and tactic_score_dev enqueues nothing.
bool tactic_select_scores(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b);

// tactic_select 9 and 10 where they apply (head_dim 128, the group budget at a forced fraction,
// every slice's block resident at once): the selection runs inside the attention kernel (10:
// the centroid scores too), which tactic_attend_dev launches with this many slices a KV head;
// 0 where it does not apply (then 9 and 10 run 4).
int tactic_fused_slices(const TacticLayerDev &L, const TacticStepArgs &a, const TacticStepBufs &b);

// The selection kernels' one-time setup (their dynamic shared memory; tactic_init_kernels).
void tactic_select_init();

}  // namespace cuda
}  // namespace tactic
