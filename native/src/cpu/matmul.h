// Matrix products against quantized weights, dispatched on the weight's own type
// (a Q4_K_M file mixes types per tensor).
#pragma once

#include <cstdint>
#include <vector>

#include "../model.h"
#include "../threadpool.h"

namespace tactic {

// Y[t * ldy + j] = dot(W row j, X[t * ldx ..]) for t < n_tokens, j < W.ne1.
// X rows hold W.ne0 floats. The activations are quantized once to the weight's
// vec_dot type (as llama.cpp does), into `scratch`. impl: 0 = the current kernel
// choice (set_kernel_impl), 1 = scalar, 2 = SIMD (tests and benchmarks).
void matmul(const Tensor &W, const float *X, int64_t ldx, int64_t n_tokens, float *Y, int64_t ldy,
            ThreadPool &pool, std::vector<uint8_t> &scratch, int impl = 0);

// out[0..W.ne0) = dequantized row `row` of W (embedding lookup).
void get_row(const Tensor &W, int64_t row, float *out);

}  // namespace tactic
