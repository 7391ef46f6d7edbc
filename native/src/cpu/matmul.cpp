// Quantized matmul: activations quantized once, output rows split across threads,
// and for prefill each weight row is reused across a block of tokens by the tile
// kernels (quant.h), so weights are read from memory once per token block.
#include "matmul.h"

#include <algorithm>

#include "../quant.h"

namespace tactic {

namespace {
// Tokens per pass over a chunk of rows: their quantized activations (<= ~150 KB for
// the widest gemma rows) stay in L2 while every row of the chunk streams past them.
constexpr int64_t kTokenBlock = 64;
}  // namespace

void matmul(const Tensor &W, const float *X, int64_t ldx, int64_t n_tokens, float *Y, int64_t ldy,
            ThreadPool &pool, std::vector<uint8_t> &scratch, int impl) {
    if (n_tokens <= 0 || W.ne1 <= 0) return;
    const uint32_t vt = vec_dot_type(W.type);
    const int64_t n = W.ne0;
    const size_t arow = row_size(vt, n);
    scratch.resize(arow * size_t(n_tokens));
    uint8_t *act = scratch.data();

    if (n_tokens >= 8) {
        pool.parallel_for(n_tokens, 4, [&](int64_t b, int64_t e) {
            for (int64_t t = b; t < e; t++) quantize_activation(W.type, X + t * ldx, act + size_t(t) * arow, n);
        });
    } else {
        for (int64_t t = 0; t < n_tokens; t++) quantize_activation(W.type, X + t * ldx, act + size_t(t) * arow, n);
    }

    const DotTileFn tile = dot_tile_kernel(W.type, impl);
    // Enough chunks to balance two or more threads, few enough that the shared
    // counter stays cold: decode splits 262144 output rows into 64-row chunks.
    const int64_t per_thread = W.ne1 / (8 * int64_t(pool.size()));
    const int64_t grain = std::clamp<int64_t>(per_thread, n_tokens > 1 ? 4 : 8, 64);
    pool.parallel_for(W.ne1, grain, [&](int64_t b, int64_t e) {
        for (int64_t t0 = 0; t0 < n_tokens; t0 += kTokenBlock) {
            const int nt = int(std::min(kTokenBlock, n_tokens - t0));
            tile(n, W.row(b), W.row_bytes, int(e - b), act + size_t(t0) * arow, arow, nt, Y + t0 * ldy + b, ldy);
        }
    });
}

void get_row(const Tensor &W, int64_t row, float *out) { dequantize_row(W.type, W.row(row), out, W.ne0); }

}  // namespace tactic
