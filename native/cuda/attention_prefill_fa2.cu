// Prefill attention, FlashAttention-2 style, on raw tensor-core instructions (the
// default: options().prefill_mma == 2). A block takes 64 (or 128) query rows (token, head)
// of one KV head's group (GQA: K/V are read once per block for all its query heads) and
// walks the keys in tiles of BK; each of its 4 (8) warps owns 16 rows and keeps all of
// them in registers: the Q fragments, the scores S of a tile, the f16 weights P made
// from them, the running max/sum and the O accumulator. K/V tiles are double-buffered
// in shared memory by cp.async (the next tile is in flight while this one is used), in
// rows padded by 16 bytes so that the 8 rows an ldmatrix reads fall in distinct banks.
// Causal and sliding-window masks are evaluated only on the tiles that cross a row's
// limit; tiles a warp's rows cannot see are skipped. A long prompt arrives in chunks
// whose keys are already in the cache (pos0 > 0).
//
// Fragment layouts of mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 (PTX ISA,
// "Matrix Fragments for mma.m16n8k16"), with g = lane / 4 and t = lane % 4:
//   A (16 x 16, row-major), 4 registers of f16x2: a0 = (row g, cols 2t, 2t+1),
//     a1 = (row g+8, cols 2t..), a2 = (row g, cols 2t+8..), a3 = (row g+8, cols 2t+8..);
//   B (16 x 8, k x n), 2 registers: b0 = (k 2t, 2t+1; col g), b1 = (k 2t+8, 2t+9; col g);
//   C/D (16 x 8, f32), 4 registers: c0, c1 = (row g, cols 2t, 2t+1), c2, c3 = (row g+8, ..).
// ldmatrix.m8n8.x4 reads four 8 x 8 b16 matrices whose row addresses come from lanes
// 0-7, 8-15, 16-23, 24-31; lane l gets of each matrix (row l / 4, cols 2(l % 4), +1),
// with .trans (row 2(l % 4), +1; col l / 4). So Q (rows x d, row-major) gives A directly;
// K stored [key][d] gives B of S = Q K^T directly (k = d, n = key); V stored [key][d]
// gives B of O = P V through .trans (k = key, n = d); and S's C tiles of keys 16s..16s+15
// are, packed to f16x2, the A fragment of P for that k-step (no trip through memory).
#include <cuda_fp16.h>

#include <type_traits>

#include "cuda_ops.cuh"
#include "cuda_util.cuh"
#include "device_limits.cuh"

namespace tactic {
namespace cuda {

namespace {

// Key tile and whether the Q fragments stay in registers: at head_dim 256 the O
// accumulator alone takes 128 registers a thread, so Q is re-read from shared memory
// (ldmatrix) each tile and the key tile is halved (S takes 16 registers, not 32).
template <int D, int NW>
struct FaCfg {
    static constexpr int kRows = 16 * NW;  // query rows a block: 16 per warp
    static constexpr int BK = D == 256 ? 32 : 64;
    static constexpr bool q_in_regs = D <= 128;
    static constexpr int LD = D + 8;  // padded row, in halves
    static constexpr size_t q_halves = size_t(kRows) * LD;
    static constexpr size_t tile_halves = size_t(BK) * LD;
    // Q, then K stages 0/1, then V stages 0/1.
    static constexpr size_t bytes = sizeof(__half) * (q_halves + 4 * tile_halves);
};

__device__ __forceinline__ uint32_t smem_addr(const void *p) { return uint32_t(__cvta_generic_to_shared(p)); }

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define TACTIC_FA2 1
// 16 bytes global -> shared, asynchronously; valid == false writes 16 zero bytes
// (src-size 0 reads nothing).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
// Waits until at most one committed group of this thread is still in flight.
__device__ __forceinline__ void cp_async_wait_one() { asm volatile("cp.async.wait_group 1;\n" ::: "memory"); }

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
// c += A B (16 x 8 x 16, f16 in, f32 accumulate).
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ uint32_t pack_f16x2(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);  // lo in the low 16 bits: the lower column
    return *reinterpret_cast<const uint32_t *>(&h);
}
#endif

template <int D, int NW>
__global__ void __launch_bounds__(NW * 32, 8 / NW) attn_prefill_fa2_kernel(PrefillAttn a) {
#ifdef TACTIC_FA2
    using C = FaCfg<D, NW>;
    constexpr int BK = C::BK, LD = C::LD, kFaRows = C::kRows;
    constexpr int NT = BK / 8;   // n-tiles of S (8 keys each)
    constexpr int DK = D / 16;   // k-steps of Q K^T along d
    constexpr int DT = D / 8;    // n-tiles of O (8 dims each)
    constexpr int CH = D / 8;    // 16-byte chunks a K/V row
    constexpr float kLog2e = 1.4426950408889634f;

    extern __shared__ __align__(128) unsigned char smem_fa2[];
    __half *Qs = reinterpret_cast<__half *>(smem_fa2);
    __half *Ks = Qs + C::q_halves;
    __half *Vs = Ks + 2 * C::tile_halves;

    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int g = blockIdx.y, group = a.n_head / a.n_head_kv;
    const int n_rows = a.n_tokens * group;
    // The last rows (latest tokens, the most keys at depth 0) start first.
    const int r0 = int(gridDim.x - 1 - blockIdx.x) * kFaRows;
    const int64_t cache_off = int64_t(g) * a.n_ctx * D;
    const __half *Kg = a.k + cache_off, *Vg = a.v + cache_off;

    // Keys of the block: the union of its rows' ranges, [lo_blk, hi).
    const int t_first = r0 / group, t_last = min(n_rows - 1, r0 + kFaRows - 1) / group;
    const int hi = a.pos0 + t_last + 1;
    const int lo_blk = a.window > 0 ? max(0, a.pos0 + t_first - a.window + 1) : 0;
    const int n_tiles = (hi - lo_blk + BK - 1) / BK;

    auto load_tile = [&](int it) {
        const int k0 = lo_blk + it * BK;
        __half *kd = Ks + (it & 1) * C::tile_halves, *vd = Vs + (it & 1) * C::tile_halves;
#pragma unroll
        for (int e = tid; e < BK * CH; e += NW * 32) {
            const int j = e / CH, c = e % CH;
            const bool ok = k0 + j < hi;  // past hi: zeros (0 * garbage could be NaN)
            const int64_t off = int64_t(ok ? k0 + j : k0) * D + c * 8;
            cp_async16(smem_addr(kd + j * LD + c * 8), Kg + off, ok);
            cp_async16(smem_addr(vd + j * LD + c * 8), Vg + off, ok);
        }
    };
    load_tile(0);
    cp_async_commit();

    // Q rows as f16 (q was rounded to f16 already: exact), padding rows zero.
    for (int e = tid; e < kFaRows * (D / 4); e += NW * 32) {
        const int rr = e / (D / 4), c4 = e % (D / 4), r = r0 + rr;
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (r < n_rows)
            v = *reinterpret_cast<const float4 *>(a.q + (int64_t(r / group) * a.n_head + g * group + r % group) * D +
                                                  c4 * 4);
        uint2 h;
        h.x = pack_f16x2(v.x, v.y);
        h.y = pack_f16x2(v.z, v.w);
        *reinterpret_cast<uint2 *>(Qs + rr * LD + c4 * 4) = h;
    }
    __syncthreads();

    // This thread's two rows: warp * 16 + lane / 4 (A) and 8 further (B).
    const int row_a = r0 + warp * 16 + lane / 4, row_b = row_a + 8;
    const int pos_a = row_a < n_rows ? a.pos0 + row_a / group : -1;  // -1: padding, sees nothing
    const int pos_b = row_b < n_rows ? a.pos0 + row_b / group : -1;
    const int lo_a = a.window > 0 ? pos_a - a.window + 1 : INT32_MIN;
    const int lo_b = a.window > 0 ? pos_b - a.window + 1 : INT32_MIN;
    // The warp's tokens: a tile outside [w_first's window start, w_last] is skipped; one
    // inside [w_last's window start, w_first] needs no mask.
    const int w_r0 = r0 + warp * 16;
    const bool warp_live = w_r0 < n_rows;
    const int w_first = a.pos0 + w_r0 / group, w_last = a.pos0 + min(n_rows - 1, w_r0 + 15) / group;

    // ldmatrix addresses (bytes, stage 0): Q / K rows by lane, V rows for .trans.
    const uint32_t q_addr = smem_addr(Qs + (warp * 16 + lane % 16) * LD + (lane / 16) * 8);
    const uint32_t k_addr = smem_addr(Ks + (lane % 8) * LD + (lane / 8) * 8);
    const uint32_t v_addr = smem_addr(Vs + (lane % 8 + ((lane / 8) % 2) * 8) * LD + (lane / 16) * 8);
    constexpr uint32_t kStageBytes = uint32_t(sizeof(__half) * C::tile_halves);

    uint32_t qf[C::q_in_regs ? DK : 1][4];
    if constexpr (C::q_in_regs) {
#pragma unroll
        for (int kk = 0; kk < DK; kk++) ldsm_x4(qf[kk], q_addr + kk * 16 * sizeof(__half));
    }

    float o[DT][4];
#pragma unroll
    for (int dt = 0; dt < DT; dt++) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.f;
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;  // l: this thread's part of the row sum

    // One tile of keys [k0, k0 + BK) from stage st; Masked: apply causal/window limits.
    auto tile = [&](auto masked_tag, int k0, int st) {
        constexpr bool kMasked = decltype(masked_tag)::value;
        float s[NT][4];
#pragma unroll
        for (int nt = 0; nt < NT; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
        const uint32_t kb = k_addr + st * kStageBytes;
        // S = Q K^T: per pair of k-steps, one ldmatrix.x4 of each 8-key n-tile gives b0, b1
        // of both (lanes 0-15: d 16kk + 0/8, lanes 16-31: d 16(kk+1) + 0/8).
#pragma unroll
        for (int kk = 0; kk < DK; kk += 2) {
            uint32_t qa[4], qb[4];
            if constexpr (C::q_in_regs) {
#pragma unroll
                for (int i = 0; i < 4; i++) qa[i] = qf[kk][i], qb[i] = qf[kk + 1][i];
            } else {
                ldsm_x4(qa, q_addr + kk * 16 * sizeof(__half));
                ldsm_x4(qb, q_addr + (kk + 1) * 16 * sizeof(__half));
            }
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                uint32_t b[4];
                ldsm_x4(b, kb + (nt * 8 * LD + kk * 16) * sizeof(__half));
                mma_16816(s[nt], qa, b[0], b[1]);
                mma_16816(s[nt], qb, b[2], b[3]);
            }
        }
        if constexpr (kMasked) {
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                const int kp = k0 + nt * 8 + 2 * (lane % 4);
                if (!(kp <= pos_a && kp >= lo_a)) s[nt][0] = -INFINITY;
                if (!(kp + 1 <= pos_a && kp + 1 >= lo_a)) s[nt][1] = -INFINITY;
                if (!(kp <= pos_b && kp >= lo_b)) s[nt][2] = -INFINITY;
                if (!(kp + 1 <= pos_b && kp + 1 >= lo_b)) s[nt][3] = -INFINITY;
            }
        }
        // Online softmax: the row's max over the quad (lanes 4g .. 4g+3 share a row).
        float mx_a = m_a, mx_b = m_b;
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            mx_a = fmaxf(mx_a, fmaxf(s[nt][0], s[nt][1]));
            mx_b = fmaxf(mx_b, fmaxf(s[nt][2], s[nt][3]));
        }
        mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 1));
        mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 2));
        mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 1));
        mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 2));
        // A row that has seen no key yet keeps max -inf: its weights are 0, its scale 1.
        const float ref_a = mx_a == -INFINITY ? 0.f : mx_a * kLog2e;
        const float ref_b = mx_b == -INFINITY ? 0.f : mx_b * kLog2e;
        const float alpha_a = exp2f(m_a * kLog2e - ref_a), alpha_b = exp2f(m_b * kLog2e - ref_b);
        m_a = mx_a;
        m_b = mx_b;
        float sum_a = 0.f, sum_b = 0.f;
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            s[nt][0] = exp2f(fmaf(s[nt][0], kLog2e, -ref_a));
            s[nt][1] = exp2f(fmaf(s[nt][1], kLog2e, -ref_a));
            s[nt][2] = exp2f(fmaf(s[nt][2], kLog2e, -ref_b));
            s[nt][3] = exp2f(fmaf(s[nt][3], kLog2e, -ref_b));
            sum_a += s[nt][0] + s[nt][1];
            sum_b += s[nt][2] + s[nt][3];
        }
        l_a = l_a * alpha_a + sum_a;
        l_b = l_b * alpha_b + sum_b;
#pragma unroll
        for (int dt = 0; dt < DT; dt++) {
            o[dt][0] *= alpha_a;
            o[dt][1] *= alpha_a;
            o[dt][2] *= alpha_b;
            o[dt][3] *= alpha_b;
        }
        // O += P V: keys 16ks..16ks+15 are S tiles 2ks, 2ks+1, packed as the A fragment;
        // one ldmatrix.x4.trans gives b0, b1 of two 8-dim n-tiles.
        const uint32_t vb = v_addr + st * kStageBytes;
#pragma unroll
        for (int ks = 0; ks < BK / 16; ks++) {
            uint32_t p[4];
            p[0] = pack_f16x2(s[2 * ks][0], s[2 * ks][1]);
            p[1] = pack_f16x2(s[2 * ks][2], s[2 * ks][3]);
            p[2] = pack_f16x2(s[2 * ks + 1][0], s[2 * ks + 1][1]);
            p[3] = pack_f16x2(s[2 * ks + 1][2], s[2 * ks + 1][3]);
#pragma unroll
            for (int dt = 0; dt < DT; dt += 2) {
                uint32_t b[4];
                ldsm_x4_trans(b, vb + (ks * 16 * LD + dt * 8) * sizeof(__half));
                mma_16816(o[dt], p, b[0], b[1]);
                mma_16816(o[dt + 1], p, b[2], b[3]);
            }
        }
    };

    for (int it = 0; it < n_tiles; it++) {
        if (it + 1 < n_tiles) load_tile(it + 1);
        cp_async_commit();  // (an empty group at the end keeps the count uniform)
        cp_async_wait_one();
        __syncthreads();  // tile it is in shared memory, from every thread's copies
        const int k0 = lo_blk + it * BK, k1 = k0 + BK - 1;
        const bool skip = !warp_live || k0 > w_last || (a.window > 0 && k1 < w_first - a.window + 1);
        if (!skip) {
            const bool masked = k1 > w_first || (a.window > 0 && k0 < w_last - a.window + 1);
            if (masked) tile(std::true_type{}, k0, it & 1);
            else tile(std::false_type{}, k0, it & 1);
        }
        __syncthreads();  // stage it & 1 is free for tile it + 2
    }

    l_a += __shfl_xor_sync(0xffffffffu, l_a, 1);
    l_a += __shfl_xor_sync(0xffffffffu, l_a, 2);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, 1);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, 2);
    const float inv_a = l_a > 0.f ? 1.f / l_a : 0.f, inv_b = l_b > 0.f ? 1.f / l_b : 0.f;
    const int col = 2 * (lane % 4);
    if (row_a < n_rows) {
        float *out = a.out + (int64_t(row_a / group) * a.n_head + g * group + row_a % group) * D + col;
#pragma unroll
        for (int dt = 0; dt < DT; dt++)
            *reinterpret_cast<float2 *>(out + dt * 8) = make_float2(o[dt][0] * inv_a, o[dt][1] * inv_a);
    }
    if (row_b < n_rows) {
        float *out = a.out + (int64_t(row_b / group) * a.n_head + g * group + row_b % group) * D + col;
#pragma unroll
        for (int dt = 0; dt < DT; dt++)
            *reinterpret_cast<float2 *>(out + dt * 8) = make_float2(o[dt][2] * inv_b, o[dt][3] * inv_b);
    }
#else
    (void)a;
    __trap();  // launched only on sm_80 and later (launch_prefill_fa2 checks)
#endif
}

template <int D, int NW>
void launch_d(const PrefillAttn &a, cudaStream_t stream) {
    using C = FaCfg<D, NW>;
    static bool configured = false;
    if (!configured) {
        set_dynamic_smem(attn_prefill_fa2_kernel<D, NW>, C::bytes, "the prefill attention kernel");
        configured = true;
    }
    const int group = a.n_head / a.n_head_kv;
    dim3 grid(unsigned((a.n_tokens * group + C::kRows - 1) / C::kRows), unsigned(a.n_head_kv));
    attn_prefill_fa2_kernel<D, NW><<<grid, NW * 32, C::bytes, stream>>>(a);
}

// Rows a block: 64 (4 warps, two blocks a multiprocessor) unless options().prefill_rows
// asks for 128 (8 warps, one block: half the K/V traffic from L2 per query row).
template <int D>
void launch_rows(const PrefillAttn &a, cudaStream_t stream) {
    if (options().prefill_rows == 128) launch_d<D, 8>(a, stream);
    else launch_d<D, 4>(a, stream);
}

}  // namespace

bool prefill_fa2_supported() { return device_limits().cc_major >= 8; }

void attention_prefill_fa2_dev(const PrefillAttn &a, cudaStream_t stream) {
    switch (a.head_dim) {
        case 64: launch_rows<64>(a, stream); break;
        case 128: launch_rows<128>(a, stream); break;
        case 256: launch_rows<256>(a, stream); break;
        default: fail(TACTIC_ERR_UNSUPPORTED, "CUDA attention: head_dim must be 64, 128 or 256");
    }
}

}  // namespace cuda
}  // namespace tactic
