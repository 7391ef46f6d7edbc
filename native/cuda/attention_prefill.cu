// Prefill attention over the f16 cache, flash-attention style: a block takes 32 query
// rows (token, head) of one KV head's group and walks the keys in tiles of 32 that it
// stages in shared memory once for all its rows (GQA: K/V are read once per block,
// not once per query head), folding each tile into a running softmax. Causal, and
// windowed for sliding-window layers; a long prompt arrives in n_batch chunks whose
// K/V are already in the cache. Plain FMA arithmetic (no tensor cores yet).
#include <cuda_fp16.h>

#include "cuda_ops.cuh"
#include "cuda_util.cuh"

namespace tactic {
namespace cuda {

namespace {

constexpr int kRows = 32, kWarps = 4, kRowsPerWarp = kRows / kWarps, kKeys = 32;

template <int D>
struct PrefillSmem {
    static constexpr int KS = D + 2;  // padded key row (halves): lanes reading rows j hit distinct banks
    static constexpr size_t bytes =
        sizeof(__half) * (size_t(kRows) * D + size_t(kKeys) * KS + size_t(kKeys) * D) + sizeof(float) * kRows * kKeys;
};

template <int D>
__global__ void __launch_bounds__(kWarps * 32) attn_prefill_kernel(PrefillAttn a) {
    extern __shared__ __align__(16) unsigned char smem[];
    constexpr int KS = PrefillSmem<D>::KS, DL = D / 32;
    __half *Qs = reinterpret_cast<__half *>(smem);
    __half *Ks = Qs + kRows * D;
    __half *Vs = Ks + kKeys * KS;
    float *Ps = reinterpret_cast<float *>(Vs + kKeys * D);

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = blockIdx.y, group = a.n_head / a.n_head_kv;
    const int n_rows = a.n_tokens * group;
    const int r0 = blockIdx.x * kRows;
    const int64_t cache_off = int64_t(g) * a.n_ctx * D;

    // Stage the block's query rows (q was rounded to f16 already: no loss).
    for (int e = threadIdx.x; e < kRows * D; e += kWarps * 32) {
        const int r = r0 + e / D, d = e % D;
        float v = 0.f;
        if (r < n_rows) v = a.q[(int64_t(r / group) * a.n_head + g * group + r % group) * D + d];
        Qs[e] = __float2half_rn(v);
    }
    // Key range of the block: the union of its rows' ranges.
    const int t_first = r0 / group, t_last = min(n_rows - 1, r0 + kRows - 1) / group;
    const int hi = a.pos0 + t_last + 1;
    const int lo_blk = a.window > 0 ? max(0, a.pos0 + t_first - a.window + 1) : 0;

    int pos_r[kRowsPerWarp], lo_r[kRowsPerWarp];
    float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][DL];
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; i++) {
        const int r = r0 + warp * kRowsPerWarp + i;
        pos_r[i] = r < n_rows ? a.pos0 + r / group : -1;  // -1: padding row, no key valid
        lo_r[i] = a.window > 0 ? max(0, pos_r[i] - a.window + 1) : 0;
        m[i] = -INFINITY;
        l[i] = 0.f;
#pragma unroll
        for (int c = 0; c < DL; c++) acc[i][c] = 0.f;
    }

    for (int k0 = lo_blk; k0 < hi; k0 += kKeys) {
        __syncthreads();  // the previous tile is consumed (and Qs written, first time)
        const int nk = min(kKeys, hi - k0);
        for (int e = threadIdx.x; e < kKeys * (D / 8); e += kWarps * 32) {
            const int j = e / (D / 8), c = e % (D / 8);
            uint4 kw = make_uint4(0, 0, 0, 0), vw = make_uint4(0, 0, 0, 0);
            if (j < nk) {
                kw = *reinterpret_cast<const uint4 *>(a.k + cache_off + int64_t(k0 + j) * D + c * 8);
                vw = *reinterpret_cast<const uint4 *>(a.v + cache_off + int64_t(k0 + j) * D + c * 8);
            }
            // Ks rows are padded to D + 2 halves (4-byte aligned only): store as 4 words.
            uint32_t *kd = reinterpret_cast<uint32_t *>(Ks + j * KS + c * 8);
            kd[0] = kw.x, kd[1] = kw.y, kd[2] = kw.z, kd[3] = kw.w;
            *reinterpret_cast<uint4 *>(Vs + j * D + c * 8) = vw;
        }
        __syncthreads();

        // Scores: lane = key.
        float s[kRowsPerWarp];
#pragma unroll
        for (int i = 0; i < kRowsPerWarp; i++) s[i] = 0.f;
        const __half2 *krow = reinterpret_cast<const __half2 *>(Ks + lane * KS);
        const __half2 *qw = reinterpret_cast<const __half2 *>(Qs + warp * kRowsPerWarp * D);
#pragma unroll 4
        for (int d2 = 0; d2 < D / 2; d2++) {
            const float2 kf = __half22float2(krow[d2]);
#pragma unroll
            for (int i = 0; i < kRowsPerWarp; i++) {
                const float2 qf = __half22float2(qw[i * (D / 2) + d2]);
                s[i] = fmaf(qf.x, kf.x, fmaf(qf.y, kf.y, s[i]));
            }
        }
        const int kp = k0 + lane;
#pragma unroll
        for (int i = 0; i < kRowsPerWarp; i++) {
            const bool ok = lane < nk && kp <= pos_r[i] && kp >= lo_r[i];
            const float sv = ok ? s[i] : -INFINITY;
            const float m_new = fmaxf(m[i], warp_max(sv));
            // A row with no valid key yet keeps m = -inf: alpha and p are 0 then.
            const float alpha = m_new == -INFINITY ? 1.f : expf(m[i] - m_new);
            const float p = m_new == -INFINITY ? 0.f : expf(sv - m_new);
            l[i] = l[i] * alpha + warp_sum(p);
            m[i] = m_new;
#pragma unroll
            for (int c = 0; c < DL; c++) acc[i][c] *= alpha;
            Ps[(warp * kRowsPerWarp + i) * kKeys + lane] = p;
        }
        __syncwarp();
        // Values: lane = dims lane + 32 c.
        for (int j = 0; j < nk; j++) {
            float vf[DL];
#pragma unroll
            for (int c = 0; c < DL; c++) vf[c] = __half2float(Vs[j * D + lane + 32 * c]);
#pragma unroll
            for (int i = 0; i < kRowsPerWarp; i++) {
                const float p = Ps[(warp * kRowsPerWarp + i) * kKeys + j];
#pragma unroll
                for (int c = 0; c < DL; c++) acc[i][c] = fmaf(p, vf[c], acc[i][c]);
            }
        }
    }

#pragma unroll
    for (int i = 0; i < kRowsPerWarp; i++) {
        const int r = r0 + warp * kRowsPerWarp + i;
        if (r >= n_rows) continue;
        float *o = a.out + (int64_t(r / group) * a.n_head + g * group + r % group) * D;
        const float inv = l[i] > 0.f ? 1.f / l[i] : 0.f;
#pragma unroll
        for (int c = 0; c < DL; c++) o[lane + 32 * c] = acc[i][c] * inv;
    }
}

template <int D>
void launch_prefill(const PrefillAttn &a, cudaStream_t stream) {
    static bool configured = false;
    if (!configured) {
        TACTIC_CU(cudaFuncSetAttribute(attn_prefill_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(PrefillSmem<D>::bytes)));
        configured = true;
    }
    const int group = a.n_head / a.n_head_kv;
    dim3 grid(unsigned((a.n_tokens * group + kRows - 1) / kRows), unsigned(a.n_head_kv));
    attn_prefill_kernel<D><<<grid, kWarps * 32, PrefillSmem<D>::bytes, stream>>>(a);
}

}  // namespace

void attention_prefill_dev(const PrefillAttn &a, cudaStream_t stream) {
    if (a.n_tokens == 0) return;
    switch (a.head_dim) {
        case 64: launch_prefill<64>(a, stream); break;
        case 128: launch_prefill<128>(a, stream); break;
        case 256: launch_prefill<256>(a, stream); break;
        default: fail(TACTIC_ERR_UNSUPPORTED, "CUDA attention: head_dim must be 64, 128 or 256");
    }
}

}  // namespace cuda
}  // namespace tactic
