// Vector kernels of Tactic attention and clustering: f32 queries against f16 keys and
// values (the cache's format), and f32 blocks for K-means. Each has a scalar reference;
// an AVX2/FMA/F16C twin (kernels_avx2.cpp) is used when the CPU has those instructions.
#pragma once

#include <cstdint>
#include <vector>

namespace tactic {
namespace tk {

// out[h] = dot(Q[h*D ..], k[0..D)) for h < g: g query heads against one f16 key,
// the key read once (a GQA group shares its keys).
void dots_group_f16(const float *Q, int g, const uint16_t *k, int D, float *out);
// g query heads scored against runs of consecutive keys: score(keys, n, out, ostride)
// sets out[o * ostride + h] = dot(Q[h*D ..], keys[o*D ..]) for h < g, o < n, the bytes
// dots_group_f16 gives key by key. With AVX-512 (kernel_impl 3, the SIMD kernels on,
// D % 16 == 0) the keys go through the vector lanes, 4 heads x 4 keys
// (kernels_avx512.cpp); the heads are laid out for it once, here.
class GroupScorer {
public:
    GroupScorer(const float *Q, int g, int D);
    void score(const uint16_t *keys, int n, float *out, int ostride) const;

private:
    const float *Q_;
    int g_, D_;
    std::vector<float> qr_;  // the AVX-512 layout of Q; empty: key by key
};
// acc[h*D + d] += w[h] * v[d] for h < g: one f16 value row into g accumulators.
void axpy_group_f16(const float *w, int g, const uint16_t *v, int D, float *acc);
// out[r*n_c + c] = dot(X[r*D ..], C[c*D ..]) for r < 4, c < n_c (K-means assignment).
void dots4_f32(const float *X, const float *C, int n_c, int D, float *out);
// out[c] = dot(x, C[c*D ..]) for c < n_c.
void dots1_f32(const float *x, const float *C, int n_c, int D, float *out);
// y[0..n) = f32(x) for f16 x.
void f16_to_f32_row(const uint16_t *x, float *y, int n);

// true: use the SIMD twins when available (default); false: the scalar references.
// Returns whether SIMD is in use after the call.
bool set_simd(bool on);
bool simd_available();

// The AVX2 twins (kernels_avx2.cpp); only called after a run-time CPU check.
namespace avx2 {
void dots_group_f16(const float *Q, int g, const uint16_t *k, int D, float *out);
void axpy_group_f16(const float *w, int g, const uint16_t *v, int D, float *acc);
void dots4_f32(const float *X, const float *C, int n_c, int D, float *out);
void dots1_f32(const float *x, const float *C, int n_c, int D, float *out);
void f16_to_f32_row(const uint16_t *x, float *y, int n);
}  // namespace avx2

// The AVX-512 twin (kernels_avx512.cpp): equals avx2::dots_group_f16 key by key; D % 16 == 0.
// qr: the heads as repeat_heads lays them out ((g + 3) / 4 * D * 16 floats).
namespace avx512 {
void repeat_heads(const float *Q, int g, int D, float *qr);
void dots_keys_f16(const float *qr, int g, const uint16_t *keys, int n, int D, float *out, int ostride);
}  // namespace avx512

}  // namespace tk
}  // namespace tactic
