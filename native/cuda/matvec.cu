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
    Q8Kind kind;
    if (version == 3 && matvec_q8_kind(type, n_cols, kind)) {  // 8-bit activations (what decode runs)
        if (n_rows == 0) return;
        DevBuf d_xq{size_t(n_cols)}, d_xd{sizeof(float) * size_t(n_cols / 32 + 1)},
            d_xs{sizeof(float) * size_t(n_cols / 16 + 1)};
        Q8Act a;
        a.q = d_xq.as<int8_t>(), a.d = d_xd.as<float>(), a.s = d_xs.as<float>();
        // x is quantized once: decode quantizes a vector once for the matrices that read it.
        quantize_q8_dev(kind, d_x.as<float>(), n_cols, a, 0);
        check_launch("quantize_q8");
        auto launch_on = [&](int copy, cudaStream_t s) {
            matvec_q8_dev(type, d_w[copy].as<uint8_t>(), row_bytes, n_rows, n_cols, a, d_y.as<float>(), s);
        };
        auto launch = [&](int copy) { launch_on(copy, 0); };
        launch(0);
        check_launch("matvec_q8_kernel");
        d_y.download(y, d_y.size());
        if (options().bench_graph) bench_in_graph(launch_on, copies, 8);
        else bench(launch, copies);
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
