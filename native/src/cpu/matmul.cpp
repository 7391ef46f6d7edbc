// Quantized matmul: activations quantized once, output rows split across threads,
// and for prefill each weight row is reused across a block of tokens by the tile
// kernels (quant.h), so weights are read from memory once per token block.
#include "matmul.h"

#include <algorithm>
#include <cstring>

#include "../common.h"
#include "../quant.h"

namespace tactic {

namespace {
// Tokens per pass over a chunk of rows: their quantized activations (~22-75 KB for
// gemma's rows) stay in L1/L2 while every row of the chunk streams past them
// (32 measured 5% faster than 64 and 10% faster than 128 at 256 tokens).
constexpr int64_t kTokenBlock = 32;
// Below this many multiply-adds (~20 us on one core) a matmul is not split.
constexpr int64_t kMinParallelMacs = int64_t(1) << 18;

// The regrouped AVX-512 tiles (legacy types) run for any number of tokens, decode's one
// included: a token's dot products then add up in the same order whatever batch it is
// in (tests/test_batch_independence.py), so prefix reuse cannot change an answer.
// Their tokens per pass: the weight gathers are repaid over more tokens (128 x 1.3 KB
// of regrouped activations for gemma's rows still sit in L2).
constexpr int64_t kRegroupTokenBlock = 128;

template <class T>
void grow(std::vector<T> &v, size_t n) {
    if (v.size() < n) v.resize(n);
}

// f32 activation scales; per thread, as `scratch` is per caller.
std::vector<float> &scale_scratch() {
    thread_local std::vector<float> v;
    return v;
}
std::vector<uint8_t> &regroup_scratch() {
    thread_local std::vector<uint8_t> v;
    return v;
}
}  // namespace

void matmul(const Tensor &W, const float *X, int64_t ldx, int64_t n_tokens, float *Y, int64_t ldy,
            ThreadPool &pool, std::vector<uint8_t> &scratch, int impl) {
    if (n_tokens <= 0 || W.ne1 <= 0) return;
    const uint32_t vt = vec_dot_type(W.type);
    const int64_t n = W.ne0;
    const size_t arow = row_size(vt, n);
    // Buffers only grow: resizing them down and up again would zero-fill each time.
    grow(scratch, arow * size_t(n_tokens));
    uint8_t *act = scratch.data();

    if (n_tokens >= 8) {
        pool.parallel_for(n_tokens, 4, [&](int64_t b, int64_t e) {
            for (int64_t t = b; t < e; t++) quantize_activation(W.type, X + t * ldx, act + size_t(t) * arow, n, impl);
        });
    } else {
        for (int64_t t = 0; t < n_tokens; t++) quantize_activation(W.type, X + t * ldx, act + size_t(t) * arow, n, impl);
    }

    // Prefill with the regrouped AVX-512 tiles: the activations regrouped once here.
    DotTileFn tile = dot_tile_regrouped(W.type, impl, W.packed != nullptr);
    // their weights repacked at load (Model::pack_for_cpu) when there is such a copy
    const uint8_t *w0 = static_cast<const uint8_t *>(tile && W.packed ? W.packed : W.data);
    size_t a_stride = arow;
    if (tile) {
        a_stride = regrouped_act_size(W.type, n);
        std::vector<uint8_t> &rg = regroup_scratch();
        grow(rg, a_stride * size_t(n_tokens));
        pool.parallel_for(n_tokens, 4, [&](int64_t b, int64_t e) {
            for (int64_t t = b; t < e; t++) regroup_activation(W.type, n, act + size_t(t) * arow, rg.data() + size_t(t) * a_stride);
        });
        act = rg.data();
    }

    // Q8_0 activations: their block scales as f32 too, so the tiles need not convert
    // an f16 per block and token.
    const float *act_scale = nullptr;
    if (vt == GGML_Q8_0 && !tile) {
        const int64_t nb = n / 32;
        const size_t block_bytes = row_size(GGML_Q8_0, 32);
        std::vector<float> &sc = scale_scratch();
        grow(sc, size_t(nb * n_tokens));
        for (int64_t t = 0; t < n_tokens; t++)
            for (int64_t i = 0; i < nb; i++) {
                uint16_t h;
                std::memcpy(&h, act + size_t(t) * arow + size_t(i) * block_bytes, 2);  // d leads a block
                sc[size_t(t * nb + i)] = f16_to_f32(h);
            }
        act_scale = sc.data();
    }

    const int64_t token_block = tile ? kRegroupTokenBlock : kTokenBlock;
    if (!tile) tile = dot_tile_kernel(W.type, impl);
    // Enough chunks to balance two or more threads, few enough that the shared
    // counter stays cold. Decode's chunks are long (up to 1024 rows: the 262144-row
    // output projection in 256) so each thread's weights stream from one place for a
    // while, which its prefetches (vec_dot_avx512.cpp) follow; 64-row chunks measured
    // 20-35% slower there on two threads.
    const int64_t per_thread = W.ne1 / (8 * int64_t(pool.size()));
    int64_t grain = std::clamp<int64_t>(per_thread, n_tokens > 1 ? 4 : 8, n_tokens > 1 ? 64 : 1024);
    // A product of a few tens of microseconds (decode's K/V projections) runs on the
    // caller alone: waking the pool would cost about as much as it saves.
    if (W.ne1 * n * n_tokens < kMinParallelMacs) grain = W.ne1;
    pool.parallel_for(W.ne1, grain, [&](int64_t b, int64_t e) {
        for (int64_t t0 = 0; t0 < n_tokens; t0 += token_block) {
            const int nt = int(std::min(token_block, n_tokens - t0));
            tile(n, w0 + size_t(b) * W.row_bytes, W.row_bytes, int(e - b), act + size_t(t0) * a_stride, a_stride,
                 act_scale ? act_scale + t0 * (n / 32) : nullptr, nt, Y + t0 * ldy + b, ldy);
        }
    });
}

void get_row(const Tensor &W, int64_t row, float *out) { dequantize_row(W.type, W.row(row), out, W.ne0); }

}  // namespace tactic
