// TEMPORARY simple version (replaced by the quant/matmul work): one vec_dot per output.
#include "matmul.h"

#include "../quant.h"

namespace tactic {

void matmul(const Tensor &W, const float *X, int64_t ldx, int64_t n_tokens, float *Y, int64_t ldy,
            ThreadPool &pool, std::vector<uint8_t> &scratch) {
    const uint32_t vt = vec_dot_type(W.type);
    const size_t arow = row_size(vt, W.ne0);
    scratch.resize(arow * size_t(n_tokens));
    for (int64_t t = 0; t < n_tokens; t++) quantize_activation(W.type, X + t * ldx, scratch.data() + t * arow, W.ne0);
    pool.parallel_for(W.ne1, 16, [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; j++)
            for (int64_t t = 0; t < n_tokens; t++)
                Y[t * ldy + j] = vec_dot(W.type, W.ne0, W.row(j), scratch.data() + t * arow);
    });
}

void get_row(const Tensor &W, int64_t row, float *out) { dequantize_row(W.type, W.row(row), out, W.ne0); }

}  // namespace tactic
