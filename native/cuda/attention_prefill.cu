// Prefill attention over the f16 cache, flash-attention style: a block takes 32 query
// rows (token, head) of one KV head's group and walks the keys in tiles of 32 that it
// stages in shared memory once for all its rows (GQA: K/V are read once per block,
// not once per query head), folding each tile into a running softmax. Causal, and
// windowed for sliding-window layers; a long prompt arrives in n_batch chunks whose
// K/V are already in the cache. Three versions, options().prefill_mma: 0 plain FMA (the
// first here), 1 tensor cores through WMMA (the second), 2 (the default) raw mma.sync
// FlashAttention-2 style (attention_prefill_fa2.cu; sm_80 and later, else WMMA).
#include <cuda_fp16.h>
#include <mma.h>

#include "cuda_ops.cuh"
#include "cuda_util.cuh"
#include "device_limits.cuh"

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
        set_dynamic_smem(attn_prefill_kernel<D>, PrefillSmem<D>::bytes, "the prefill attention kernel (prefill_mma 0)");
        configured = true;
    }
    const int group = a.n_head / a.n_head_kv;
    dim3 grid(unsigned((a.n_tokens * group + kRows - 1) / kRows), unsigned(a.n_head_kv));
    attn_prefill_kernel<D><<<grid, kWarps * 32, PrefillSmem<D>::bytes, stream>>>(a);
}


// ---- Tensor-core version (WMMA, f16 in, f32 accumulate) ----------------------------
// A block: one KV head, 64 query rows (4 warps x 16), key tiles of 64 staged in shared
// memory. Each warp: S = Q K^T on tensor cores into shared memory; the online softmax
// there (two lanes a row), P rounded to f16; O += P V on tensor cores with O kept in
// shared memory (its per-row rescale needs the row of each element, which WMMA's
// fragments do not expose).
constexpr int kMmaRows = 64, kMmaKeys = 64, kMmaWarps = 4;

template <int D>
struct MmaSmem {
    static constexpr int LQ = D + 8, LS = kMmaKeys + 4, LP = kMmaKeys + 8, LO = D + 4;
    static constexpr size_t q_off = 0;
    static constexpr size_t k_off = q_off + sizeof(__half) * kMmaRows * LQ;
    static constexpr size_t v_off = k_off + sizeof(__half) * kMmaKeys * LQ;
    static constexpr size_t s_off = v_off + sizeof(__half) * kMmaKeys * LQ;
    static constexpr size_t p_off = s_off + sizeof(float) * kMmaWarps * 16 * LS;
    static constexpr size_t o_off = p_off + sizeof(__half) * kMmaWarps * 16 * LP;
    static constexpr size_t bytes = o_off + sizeof(float) * kMmaWarps * 16 * LO;
};

template <int D>
__global__ void __launch_bounds__(kMmaWarps * 32) attn_prefill_mma_kernel(PrefillAttn a) {
    using namespace nvcuda;
    using S = MmaSmem<D>;
    extern __shared__ __align__(128) unsigned char smem_mma[];  // WMMA pointers need 32-byte alignment
    unsigned char *smem = smem_mma;
    __half *Qs = reinterpret_cast<__half *>(smem + S::q_off);
    __half *Ks = reinterpret_cast<__half *>(smem + S::k_off);
    __half *Vs = reinterpret_cast<__half *>(smem + S::v_off);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float *Sw = reinterpret_cast<float *>(smem + S::s_off) + warp * 16 * S::LS;
    __half *Pw = reinterpret_cast<__half *>(smem + S::p_off) + warp * 16 * S::LP;
    float *Ow = reinterpret_cast<float *>(smem + S::o_off) + warp * 16 * S::LO;

    const int g = blockIdx.y, group = a.n_head / a.n_head_kv;
    const int n_rows = a.n_tokens * group;
    const int r0 = blockIdx.x * kMmaRows;
    const int64_t cache_off = int64_t(g) * a.n_ctx * D;

    for (int e = threadIdx.x; e < kMmaRows * D; e += kMmaWarps * 32) {
        const int r = r0 + e / D, d = e % D;
        float v = 0.f;
        if (r < n_rows) v = a.q[(int64_t(r / group) * a.n_head + g * group + r % group) * D + d];
        Qs[(e / D) * S::LQ + d] = __float2half_rn(v);
    }
    for (int e = lane; e < 16 * D; e += 32) Ow[(e / D) * S::LO + e % D] = 0.f;

    // Lane pair (2i, 2i+1) owns row i of the warp's 16: columns [32 half, 32 half + 32).
    const int ri = lane / 2, half = lane % 2;
    const int r = r0 + warp * 16 + ri;
    const int pos_r = r < n_rows ? a.pos0 + r / group : -1;
    const int lo_r = a.window > 0 ? max(0, pos_r - a.window + 1) : 0;
    float m = -INFINITY, l = 0.f;

    const int t_first = r0 / group, t_last = min(n_rows - 1, r0 + kMmaRows - 1) / group;
    const int hi = a.pos0 + t_last + 1;
    const int lo_blk = a.window > 0 ? max(0, a.pos0 + t_first - a.window + 1) : 0;

    for (int k0 = lo_blk; k0 < hi; k0 += kMmaKeys) {
        __syncthreads();
        const int nk = min(kMmaKeys, hi - k0);
        for (int e = threadIdx.x; e < kMmaKeys * (D / 8); e += kMmaWarps * 32) {
            const int j = e / (D / 8), c = e % (D / 8);
            uint4 kw = make_uint4(0, 0, 0, 0), vw = make_uint4(0, 0, 0, 0);
            if (j < nk) {
                kw = *reinterpret_cast<const uint4 *>(a.k + cache_off + int64_t(k0 + j) * D + c * 8);
                vw = *reinterpret_cast<const uint4 *>(a.v + cache_off + int64_t(k0 + j) * D + c * 8);
            }
            *reinterpret_cast<uint4 *>(Ks + j * S::LQ + c * 8) = kw;
            *reinterpret_cast<uint4 *>(Vs + j * S::LQ + c * 8) = vw;
        }
        __syncthreads();

        // S = Q_w K^T
        for (int nt = 0; nt < kMmaKeys / 16; nt++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
            wmma::fill_fragment(c, 0.f);
#pragma unroll 4
            for (int kk = 0; kk < D / 16; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> fb;
                wmma::load_matrix_sync(fa, Qs + warp * 16 * S::LQ + kk * 16, S::LQ);
                wmma::load_matrix_sync(fb, Ks + nt * 16 * S::LQ + kk * 16, S::LQ);
                wmma::mma_sync(c, fa, fb, c);
            }
            wmma::store_matrix_sync(Sw + nt * 16, c, S::LS, wmma::mem_row_major);
        }
        __syncwarp();

        // Online softmax of row ri over this tile's 64 keys.
        float sv[32];
        float tmax = -INFINITY;
#pragma unroll
        for (int j = 0; j < 32; j++) {
            const int col = half * 32 + j, kp = k0 + col;
            const bool ok = col < nk && kp <= pos_r && kp >= lo_r;
            sv[j] = ok ? Sw[ri * S::LS + col] : -INFINITY;
            tmax = fmaxf(tmax, sv[j]);
        }
        tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 1));
        const float m_new = fmaxf(m, tmax);
        const float alpha = m_new == -INFINITY ? 1.f : expf(m - m_new);
        float psum = 0.f;
#pragma unroll
        for (int j = 0; j < 32; j++) {
            const float p = m_new == -INFINITY ? 0.f : expf(sv[j] - m_new);
            psum += p;
            Pw[ri * S::LP + half * 32 + j] = __float2half_rn(p);
        }
        psum += __shfl_xor_sync(0xffffffffu, psum, 1);
        l = l * alpha + psum;
        m = m_new;
        for (int cidx = half * (D / 2); cidx < (half + 1) * (D / 2); cidx++) Ow[ri * S::LO + cidx] *= alpha;
        __syncwarp();

        // O_w += P_w V
        for (int dt = 0; dt < D / 16; dt++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
            wmma::load_matrix_sync(c, Ow + dt * 16, S::LO, wmma::mem_row_major);
#pragma unroll
            for (int kk = 0; kk < kMmaKeys / 16; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> fb;
                wmma::load_matrix_sync(fa, Pw + kk * 16, S::LP);
                wmma::load_matrix_sync(fb, Vs + kk * 16 * S::LQ + dt * 16, S::LQ);
                wmma::mma_sync(c, fa, fb, c);
            }
            wmma::store_matrix_sync(Ow + dt * 16, c, S::LO, wmma::mem_row_major);
        }
        __syncwarp();
    }

    if (r < n_rows) {
        float *o = a.out + (int64_t(r / group) * a.n_head + g * group + r % group) * D;
        const float inv = l > 0.f ? 1.f / l : 0.f;
        for (int cidx = half * (D / 2); cidx < (half + 1) * (D / 2); cidx++) o[cidx] = Ow[ri * S::LO + cidx] * inv;
    }
}

template <int D>
void launch_prefill_mma(const PrefillAttn &a, cudaStream_t stream) {
    static bool configured = false;
    if (!configured) {
        set_dynamic_smem(attn_prefill_mma_kernel<D>, MmaSmem<D>::bytes, "the prefill attention kernel (prefill_mma 1)");
        configured = true;
    }
    const int group = a.n_head / a.n_head_kv;
    dim3 grid(unsigned((a.n_tokens * group + kMmaRows - 1) / kMmaRows), unsigned(a.n_head_kv));
    attn_prefill_mma_kernel<D><<<grid, kMmaWarps * 32, MmaSmem<D>::bytes, stream>>>(a);
}

}  // namespace

void attention_prefill_dev(const PrefillAttn &a, cudaStream_t stream) {
    if (a.n_tokens == 0) return;
    if (options().prefill_mma == 2 && prefill_fa2_supported()) {
        attention_prefill_fa2_dev(a, stream);
        return;
    }
    if (options().prefill_mma) {
        switch (a.head_dim) {
            case 64: launch_prefill_mma<64>(a, stream); return;
            case 128: launch_prefill_mma<128>(a, stream); return;
            case 256: launch_prefill_mma<256>(a, stream); return;
            default: break;
        }
    }
    switch (a.head_dim) {
        case 64: launch_prefill<64>(a, stream); break;
        case 128: launch_prefill<128>(a, stream); break;
        case 256: launch_prefill<256>(a, stream); break;
        default: fail(TACTIC_ERR_UNSUPPORTED, "CUDA attention: head_dim must be 64, 128 or 256");
    }
}

void prefill_attention(const PrefillAttnHost &in) {
    require_device();
    const int D = in.head_dim;
    const size_t kv_bytes = sizeof(uint16_t) * size_t(in.n_head_kv) * size_t(in.n_ctx) * size_t(D);
    const size_t q_bytes = sizeof(float) * size_t(in.n_tokens) * size_t(in.n_head) * size_t(D);
    const int copies = bench_copies(2 * kv_bytes);
    std::vector<DevBuf> d_k, d_v;
    for (int i = 0; i < copies; i++) {
        d_k.emplace_back(kv_bytes);
        d_k.back().upload(in.k, kv_bytes);
        d_v.emplace_back(kv_bytes);
        d_v.back().upload(in.v, kv_bytes);
    }
    DevBuf d_q(q_bytes), d_out(q_bytes);
    d_q.upload(in.q, q_bytes);
    d_out.poison();
    PrefillAttn a;
    a.q = d_q.as<float>();
    a.n_tokens = in.n_tokens;
    a.n_head = in.n_head;
    a.n_head_kv = in.n_head_kv;
    a.head_dim = D;
    a.n_ctx = in.n_ctx;
    a.pos0 = in.pos0;
    a.window = in.window;
    a.out = d_out.as<float>();
    auto launch = [&](int copy) {
        a.k = d_k[copy].as<__half>();
        a.v = d_v[copy].as<__half>();
        attention_prefill_dev(a, 0);
    };
    launch(0);
    check_launch("prefill attention");
    d_out.download(in.out, q_bytes);
    bench(launch, copies);
}

}  // namespace cuda
}  // namespace tactic
