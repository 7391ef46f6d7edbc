// y = W x for one token (decode): W rows in their own type, x and y f32, f32
// accumulation. Decode is bound by reading W once, so the kernel is built around
// that stream: each warp owns R consecutive rows and walks them chunk by chunk, a
// lane per chunk; the x values of a chunk are loaded once and used for all R rows,
// so x costs L1 bandwidth only 1/R as often as the weights are read.
#include "cuda_backend.h"
#include "cuda_util.cuh"
#include "cuda_ops.cuh"
#include "quant_blocks.cuh"

namespace tactic {
namespace cuda {

namespace {

constexpr int kMatvecWarps = 4;  // warps per block

template <int T, int R>
__global__ void __launch_bounds__(kMatvecWarps * 32)
    matvec_kernel(const uint8_t *__restrict__ W, size_t row_bytes, int64_t n_rows, int chunks_per_row,
                  const float *__restrict__ x, float *__restrict__ y) {
    using Q = QTraits<T>;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t row0 = (int64_t(blockIdx.x) * kMatvecWarps + warp) * R;
    if (row0 >= n_rows) return;
    const uint8_t *rows[R];
#pragma unroll
    for (int r = 0; r < R; r++) rows[r] = W + (row0 + r < n_rows ? row0 + r : n_rows - 1) * row_bytes;
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; r++) acc[r] = 0.f;
    // Unrolled so that several chunks' loads are in flight at once (small chunks).
#pragma unroll(Q::CE <= 16 ? 4 : 2)
    for (int c = lane; c < chunks_per_row; c += 32) {
        const int blk = c / Q::CPB, sub = c % Q::CPB;
        float xr[Q::CE];
        load_x<T>(x + int64_t(blk) * Q::BS, sub, xr);
#pragma unroll
        for (int r = 0; r < R; r++) {
            float v[Q::CE];
            decode<T>(rows[r] + int64_t(blk) * Q::TS, sub, v);
            float s = 0.f;
#pragma unroll
            for (int i = 0; i < Q::CE; i++) s = fmaf(v[i], xr[i], s);
            acc[r] += s;
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++) {
        const float s = warp_sum(acc[r]);
        if (lane == 0 && row0 + r < n_rows) y[row0 + r] = s;
    }
}

// Version 2: the group-affine decode (one FFMA per element), the x sums of each group
// shared by the R rows, and a register cap that keeps 6 blocks (24 warps) resident
// per multiprocessor so that more loads are in flight.
template <int T, int R>
__global__ void __launch_bounds__(kMatvecWarps * 32, 6)
    matvec2_kernel(const uint8_t *__restrict__ W, size_t row_bytes, int64_t n_rows, int chunks_per_row,
                   const float *__restrict__ x, float *__restrict__ y) {
    using Q = QTraits<T>;
    constexpr int NG = Groups<T>::NG, GE = Q::CE / NG;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t row0 = (int64_t(blockIdx.x) * kMatvecWarps + warp) * R;
    if (row0 >= n_rows) return;
    const uint8_t *rows[R];
#pragma unroll
    for (int r = 0; r < R; r++) rows[r] = W + (row0 + r < n_rows ? row0 + r : n_rows - 1) * row_bytes;
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; r++) acc[r] = 0.f;
#pragma unroll(Q::CE >= 32 ? 1 : 2)
    for (int c = lane; c < chunks_per_row; c += 32) {
        const int blk = c / Q::CPB, sub = c % Q::CPB;
        float xr[Q::CE];
        load_x<T>(x + int64_t(blk) * Q::BS, sub, xr);
        float sx[NG];
#pragma unroll
        for (int g = 0; g < NG; g++) {
            sx[g] = 0.f;
#pragma unroll
            for (int i = 0; i < GE; i++) sx[g] += xr[g * GE + i];
        }
#pragma unroll
        for (int r = 0; r < R; r++) {
            float q[Q::CE], gd[NG], gm[NG];
            decode_affine<T>(rows[r] + int64_t(blk) * Q::TS, sub, q, gd, gm);
#pragma unroll
            for (int g = 0; g < NG; g++) {
                float s = 0.f;
#pragma unroll
                for (int i = 0; i < GE; i++) s = fmaf(q[g * GE + i], xr[g * GE + i], s);
                acc[r] = fmaf(gd[g], s, fmaf(gm[g], sx[g], acc[r]));
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++) {
        const float s = warp_sum(acc[r]);
        if (lane == 0 && row0 + r < n_rows) y[row0 + r] = s;
    }
}

template <int T, int R>
void launch_matvec2(const uint8_t *W, size_t row_bytes, int64_t n_rows, int64_t n_cols, const float *x, float *y,
                    cudaStream_t stream = 0) {
    const int cpr = int(n_cols / QTraits<T>::CE);
    const int64_t rows_per_block = int64_t(kMatvecWarps) * R;
    const unsigned blocks = unsigned((n_rows + rows_per_block - 1) / rows_per_block);
    matvec2_kernel<T, R><<<blocks, kMatvecWarps * 32, 0, stream>>>(W, row_bytes, n_rows, cpr, x, y);
}

template <int T, int R>
void launch_matvec(const uint8_t *W, size_t row_bytes, int64_t n_rows, int64_t n_cols, const float *x, float *y,
                   cudaStream_t stream = 0) {
    const int cpr = int(n_cols / QTraits<T>::CE);
    const int64_t rows_per_block = int64_t(kMatvecWarps) * R;
    const unsigned blocks = unsigned((n_rows + rows_per_block - 1) / rows_per_block);
    matvec_kernel<T, R><<<blocks, kMatvecWarps * 32, 0, stream>>>(W, row_bytes, n_rows, cpr, x, y);
}


// ---- Q4_K against 8-bit activations (decode's main weight type in Q4_K_M files) ----
// x is quantized once per input vector to int8 in groups of 32 (scale d, and the sum
// of the group's dequantized values for the K-quants' min term), as llama.cpp's q8_1;
// a warp then owns one row and streams it with 16-byte loads: lane l takes qs bytes
// 16 (l % 8) .. +15 of block (l / 8) of each 4-block step (32 weights: 16 in each of
// two sub-blocks) and the matching 2 x 16 int8 activations, 8 dp4a per step.
constexpr int kQ8Group = 32;

__global__ void quantize_q8_kernel(const float *__restrict__ x, int n, int8_t *__restrict__ xq,
                                   float2 *__restrict__ xds) {
    const int g = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (g * kQ8Group >= n) return;
    const float v = x[g * kQ8Group + lane];
    const float amax = warp_max(fabsf(v));
    const float d = amax / 127.f;
    const int q = amax > 0.f ? __float2int_rn(v / d) : 0;
    xq[g * kQ8Group + lane] = int8_t(q);
    const float s = warp_sum(float(q));
    if (lane == 0) xds[g] = make_float2(d, s * d);
}

__device__ __forceinline__ int dot16_nibbles(uint4 w, int shift, int4 x) {
    const int m = 0x0F0F0F0F;
    int acc = __dp4a(int((w.x >> shift) & m), x.x, 0);
    acc = __dp4a(int((w.y >> shift) & m), x.y, acc);
    acc = __dp4a(int((w.z >> shift) & m), x.z, acc);
    return __dp4a(int((w.w >> shift) & m), x.w, acc);
}

__global__ void __launch_bounds__(kMatvecWarps * 32)
    matvec_q4k_q8_kernel(const uint8_t *__restrict__ W, size_t row_bytes, int64_t n_rows, int n_blocks,
                         const int8_t *__restrict__ xq, const float2 *__restrict__ xds, float *__restrict__ y) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t row = int64_t(blockIdx.x) * kMatvecWarps + warp;
    if (row >= n_rows) return;
    const uint8_t *wr = W + row * row_bytes;
    const int c = lane % 8, j = c / 2, h = c % 2;  // 16-byte chunk of qs, its 64-element group, half
    float acc = 0.f;
#pragma unroll 4
    for (int b = lane / 8; b < n_blocks; b += 4) {
        const uint8_t *blk = wr + int64_t(b) * 144;
        const uint4 hdr = ld128(blk);              // d, dmin, scales[12]
        const uint4 qw = ld128(blk + 16 + 16 * c);
        const int8_t *xb = xq + int64_t(b) * 256 + 64 * j + 16 * h;
        const int4 xa = *reinterpret_cast<const int4 *>(xb);
        const int4 xh = *reinterpret_cast<const int4 *>(xb + 32);
        const float2 da = xds[b * 8 + 2 * j], dh = xds[b * 8 + 2 * j + 1];
        float sc_a, m_a, sc_h, m_h;
        kscale_min(hdr.y, hdr.z, hdr.w, 2 * j, sc_a, m_a);
        kscale_min(hdr.y, hdr.z, hdr.w, 2 * j + 1, sc_h, m_h);
        const float d = h2f(hdr.x & 0xffffu), dmin = h2f(hdr.x >> 16);
        const int dot_a = dot16_nibbles(qw, 0, xa), dot_h = dot16_nibbles(qw, 4, xh);
        acc = fmaf(d * sc_a * da.x, float(dot_a), acc);
        acc = fmaf(d * sc_h * dh.x, float(dot_h), acc);
        // The min term covers whole 32-element groups: counted once, by the h = 0 lane.
        if (h == 0) acc -= dmin * (m_a * da.y + m_h * dh.y);
    }
    acc = warp_sum(acc);
    if (lane == 0) y[row] = acc;
}

// Kernel version and rows per warp by type, the fastest on the large shapes of
// scripts/gpu_bench.py on an H200 (docs/results/gpu_bench_run3.json).
struct Variant {
    int version, rows;
};
Variant default_variant(uint32_t type) {
    switch (type) {
        case TACTIC_TYPE_Q4_0: case TACTIC_TYPE_Q4_1: case TACTIC_TYPE_Q5_0: case TACTIC_TYPE_Q5_1:
        case TACTIC_TYPE_Q8_0: return {2, 2};
        case TACTIC_TYPE_Q5_K: return {2, 1};
        case TACTIC_TYPE_Q4_K: case TACTIC_TYPE_Q6_K: return {1, 2};
        default: return {1, 4};  // float rows: all variants within noise
    }
}

}  // namespace

void matvec_dev(uint32_t type, const void *w, size_t row_bytes, int64_t n_rows, int64_t n_cols, const float *x,
                float *y, cudaStream_t stream) {
    const Variant v = default_variant(type);
    const bool ok = dispatch_type(type, n_cols, [&](auto tag) {
        constexpr int T = decltype(tag)::value;
        const uint8_t *W = static_cast<const uint8_t *>(w);
        if (v.version == 2) {
            if (v.rows == 1) launch_matvec2<T, 1>(W, row_bytes, n_rows, n_cols, x, y, stream);
            else launch_matvec2<T, 2>(W, row_bytes, n_rows, n_cols, x, y, stream);
        } else {
            if (v.rows == 2) launch_matvec<T, 2>(W, row_bytes, n_rows, n_cols, x, y, stream);
            else launch_matvec<T, 4>(W, row_bytes, n_rows, n_cols, x, y, stream);
        }
    });
    TACTIC_CHECK(ok, TACTIC_ERR_UNSUPPORTED, "CUDA matvec: unsupported type " + std::to_string(type));
}

bool matvec_q8_supported(uint32_t type, int64_t n_cols) { return type == TACTIC_TYPE_Q4_K && n_cols % 256 == 0; }

void quantize_q8_dev(const float *x, int64_t n, int8_t *xq, float2 *xds, cudaStream_t stream) {
    const int64_t groups = n / kQ8Group;
    if (groups) quantize_q8_kernel<<<unsigned((groups + 7) / 8), 256, 0, stream>>>(x, int(n), xq, xds);
}

void matvec_q8_dev(uint32_t type, const void *w, size_t row_bytes, int64_t n_rows, int64_t n_cols, const int8_t *xq,
                   const float2 *xds, float *y, cudaStream_t stream) {
    TACTIC_CHECK(matvec_q8_supported(type, n_cols), TACTIC_ERR_INTERNAL, "matvec_q8: unsupported type");
    const unsigned blocks = unsigned((n_rows + kMatvecWarps - 1) / kMatvecWarps);
    matvec_q4k_q8_kernel<<<blocks, kMatvecWarps * 32, 0, stream>>>(static_cast<const uint8_t *>(w), row_bytes, n_rows,
                                                                  int(n_cols / 256), xq, xds, y);
}

void matvec(uint32_t type, const void *w, size_t row_bytes, int64_t n_rows, int64_t n_cols, const float *x,
            float *y) {
    require_device();
    const size_t w_bytes = row_bytes * size_t(n_rows);
    const int copies = bench_copies(w_bytes);
    std::vector<DevBuf> d_w;
    for (int i = 0; i < copies; i++) {
        d_w.emplace_back(w_bytes);
        d_w.back().upload(w, w_bytes);
    }
    DevBuf d_x(sizeof(float) * size_t(n_cols)), d_y(sizeof(float) * size_t(n_rows));
    d_x.upload(x, d_x.size());
    d_y.poison();
    const Variant def = default_variant(type);
    const int version = options().matvec_version ? options().matvec_version : def.version;
    const int rows = options().matvec_rows                      ? options().matvec_rows
                     : options().matvec_version == 0            ? def.rows
                     : version == 2                             ? 2
                                                                : 4;
    if (version == 3 && matvec_q8_supported(type, n_cols)) {  // 8-bit activations (what decode runs)
        DevBuf d_xq{size_t(n_cols)}, d_xds{sizeof(float2) * size_t(n_cols / 32)};
        auto launch = [&](int copy) {
            quantize_q8_dev(d_x.as<float>(), n_cols, d_xq.as<int8_t>(), d_xds.as<float2>(), 0);
            matvec_q8_dev(type, d_w[copy].as<uint8_t>(), row_bytes, n_rows, n_cols, d_xq.as<int8_t>(),
                          d_xds.as<float2>(), d_y.as<float>(), 0);
        };
        if (n_rows == 0) return;
        launch(0);
        check_launch("matvec_q4k_q8_kernel");
        d_y.download(y, d_y.size());
        bench(launch, copies);
        return;
    }
    const bool ok = dispatch_type(type, n_cols, [&](auto tag) {
        constexpr int T = decltype(tag)::value;
        if (n_rows == 0) return;
        auto launch = [&](int copy) {
            const uint8_t *W = d_w[copy].as<uint8_t>();
            if (version == 2) {
                switch (rows) {
                    case 1: launch_matvec2<T, 1>(W, row_bytes, n_rows, n_cols, d_x.as<float>(), d_y.as<float>()); break;
                    case 4: launch_matvec2<T, 4>(W, row_bytes, n_rows, n_cols, d_x.as<float>(), d_y.as<float>()); break;
                    default: launch_matvec2<T, 2>(W, row_bytes, n_rows, n_cols, d_x.as<float>(), d_y.as<float>()); break;
                }
                return;
            }
            switch (rows) {
                case 1: launch_matvec<T, 1>(W, row_bytes, n_rows, n_cols, d_x.as<float>(), d_y.as<float>()); break;
                case 2: launch_matvec<T, 2>(W, row_bytes, n_rows, n_cols, d_x.as<float>(), d_y.as<float>()); break;
                case 8: launch_matvec<T, 8>(W, row_bytes, n_rows, n_cols, d_x.as<float>(), d_y.as<float>()); break;
                default: launch_matvec<T, 4>(W, row_bytes, n_rows, n_cols, d_x.as<float>(), d_y.as<float>()); break;
            }
        };
        launch(0);
        check_launch("matvec_kernel");
        d_y.download(y, d_y.size());
        bench(launch, copies);
    });
    TACTIC_CHECK(ok, TACTIC_ERR_UNSUPPORTED, "CUDA matvec: unsupported type " + std::to_string(type));
}

}  // namespace cuda
}  // namespace tactic
