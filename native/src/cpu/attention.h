// Exact softmax attention on the CPU over an f16 KV cache, for one KV group (the
// query heads that share a KV head). Scores are plain q.k: callers pre-scale q.
#pragma once

#include <cstdint>
#include <vector>

#include "../threadpool.h"
#include "key_map.h"

namespace tactic {

// Running softmax state of n_q heads: max m, sum l and the unnormalised output acc.
struct SoftmaxPartial {
    std::vector<float> m, l, acc;  // [n_q], [n_q], [n_q * D]
    void reset(int n_q, int D);
    void merge(const SoftmaxPartial &o, int n_q, int D);
    void finish(float *out, int n_q, int D) const;  // out[n_q][D] = acc / l
    void finish_row(int h, float *out, int D) const;  // out[D] = row h of acc / l
};

// Folds keys/values rows [j0, j1) (or the rows listed in idx[j0..j1) when idx is
// non-null) of one cache head into `part`. scratch grows as needed.
// impl as set_kernel_impl (0 = the current choice; 3 = the AVX-512 exp / f16 rounding).
void attend_rows(const float *q, int n_q, int D, const uint16_t *K, const uint16_t *V, const int32_t *idx,
                 int j0, int j1, SoftmaxPartial &part, std::vector<float> &scratch, int impl = 0);

// Keys are addressed by position (KeyMap: where each one sits in the cache head). The
// attention of a query over positions [lo, hi) is the merge, in order, of one partial
// softmax per chunk [c·kAttnChunk, (c+1)·kAttnChunk) ∩ [lo, hi). Decode folds its chunks
// in parallel (attention_split), prefill one after another (attention_chunked,
// attend_query_block); each chunk goes through attend_chunk, whose numbers for a query
// do not depend on anything but its own range, so a token's output is the same bytes
// whatever batch or split it is evaluated in (tests/test_batch_independence.py).
constexpr int kAttnChunk = 1024;

// part = the partial softmax of the keys at positions [p0, p1) (within one chunk): the
// AVX-512 block kernel when impl 3 runs and fits (n_q <= 64, D % 64 == 0), else
// attend_rows. part is reset first.
void attend_chunk(const float *q, int n_q, int D, const uint16_t *K, const uint16_t *V, const KeyMap &map, int p0,
                  int p1, SoftmaxPartial &part, std::vector<float> &scratch, int impl = 0);

// out[n_q][D] = attention over positions [lo, hi), chunk by chunk on the calling thread.
void attention_chunked(const float *q, int n_q, int D, const uint16_t *K, const uint16_t *V, const KeyMap &map,
                       int lo, int hi, float *out, int impl = 0);

// The same, the chunks split across threads (decode). Without a map, position = row.
void attention_split(const float *q, int n_q, int D, const uint16_t *K, const uint16_t *V, const KeyMap &map, int lo,
                     int hi, float *out, ThreadPool &pool);
inline void attention_split(const float *q, int n_q, int D, const uint16_t *K, const uint16_t *V, int lo, int hi,
                            float *out, ThreadPool &pool) {
    attention_split(q, n_q, D, K, V, KeyMap{}, lo, hi, out, pool);
}

// Prefill: nt consecutive query tokens, each with `group` query heads of one KV head.
// Token i's rows are q[i * q_stride + h * D] (h < group) and attend the positions
// [lo[i], hi[i]) (map: their cache rows); outputs go to out[i * out_stride + h * D].
// impl as set_kernel_impl (0 = current): 3 runs the AVX-512 block kernel over all tokens
// together (keys read once per block, attention_avx512.cpp), others attention_chunked
// token by token; either way each token gets the bytes attention_split gives it alone.
void attend_query_block(const float *q, int64_t q_stride, int nt, int group, int D, const uint16_t *K,
                        const uint16_t *V, const KeyMap &map, const int *lo, const int *hi, float *out,
                        int64_t out_stride, int impl = 0);
// Tokens per attend_query_block call for a group size (the block kernel's 64 rows).
int query_block_tokens(int group);

// SIMD kernels (AVX2/F16C when the CPU has them, else scalar).
// out[h * stride + r] = dot(q[h], K[row r]) for r < n_rows
void qk_dots(const float *q, int n_q, int D, const uint16_t *K, const int32_t *rows, int n_rows, float *out,
             int stride);
// acc[h] += sum_r w[h * stride + r] * V[row r]
void pv_accumulate(float *acc, int n_q, int D, const float *w, int stride, const uint16_t *V, const int32_t *rows,
                   int n_rows);

// The AVX-512 block kernel (attention_avx512.cpp; call only when cpu_has_avx512_vnni()).
// Partial softmax state (m, l, unnormalised acc) of rows r < nt * group over the keys
// [j_begin, j_end), row r (head r % group of token r / group) masked to its token's [lo, hi).
// layout: 1 = query rows in the lanes (any block), 2 = keys in the lanes (a few rows: a
// decode token), 0 = by the number of rows. Both give the same bytes.
bool attend_block_avx512_supports(int rows, int D, int layout = 0);
void attend_block_avx512(const float *q, int64_t q_stride, int nt, int group, int D, const uint16_t *K,
                         const uint16_t *V, const KeyMap &map, const int *lo, const int *hi, int j_begin, int j_end,
                         float *m_out, float *l_out, float *acc_out, int layout = 0);

}  // namespace tactic
