// Dequantization of whole rows on the GPU: one thread per chunk (quant_blocks.cuh).
#include "cuda_backend.h"
#include "cuda_ops.cuh"
#include "cuda_util.cuh"
#include "quant_blocks.cuh"

namespace tactic {
namespace cuda {

namespace {

template <int T>
__global__ void dequantize_kernel(const uint8_t *__restrict__ src, size_t row_bytes, int64_t n_rows,
                                  int64_t chunks_per_row, int64_t n_per_row, float *__restrict__ dst) {
    using Q = QTraits<T>;
    const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (t >= n_rows * chunks_per_row) return;
    const int64_t row = t / chunks_per_row, c = t % chunks_per_row;
    const int64_t blk = c / Q::CPB;
    const int sub = int(c % Q::CPB);
    float v[Q::CE];
    decode<T>(src + row * row_bytes + blk * Q::TS, sub, v);
    float *out = dst + row * n_per_row + blk * Q::BS;
#pragma unroll
    for (int i = 0; i < Q::CE; i++) out[xoff<T>(sub, i)] = v[i];
}

// f16 output for the tensor-core GEMM of prefill.
template <int T>
__global__ void dequantize_f16_kernel(const uint8_t *__restrict__ src, size_t row_bytes, int64_t n_rows,
                                      int64_t chunks_per_row, int64_t n_per_row, __half *__restrict__ dst) {
    using Q = QTraits<T>;
    const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (t >= n_rows * chunks_per_row) return;
    const int64_t row = t / chunks_per_row, c = t % chunks_per_row;
    const int64_t blk = c / Q::CPB;
    const int sub = int(c % Q::CPB);
    float v[Q::CE];
    decode<T>(src + row * row_bytes + blk * Q::TS, sub, v);
    __half *out = dst + row * n_per_row + blk * Q::BS;
#pragma unroll
    for (int i = 0; i < Q::CE; i++) out[xoff<T>(sub, i)] = __float2half_rn(v[i]);
}

// Embedding lookup: row rows[t] of the table, scaled, one thread per chunk.
template <int T>
__global__ void get_rows_kernel(const uint8_t *__restrict__ src, size_t row_bytes, const int32_t *__restrict__ rows,
                                int n, int64_t chunks_per_row, int64_t n_per_row, float scale,
                                float *__restrict__ dst) {
    using Q = QTraits<T>;
    const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (t >= int64_t(n) * chunks_per_row) return;
    const int64_t tok = t / chunks_per_row, c = t % chunks_per_row;
    const int64_t blk = c / Q::CPB;
    const int sub = int(c % Q::CPB);
    float v[Q::CE];
    decode<T>(src + int64_t(rows[tok]) * row_bytes + blk * Q::TS, sub, v);
    float *out = dst + tok * n_per_row + blk * Q::BS;
#pragma unroll
    for (int i = 0; i < Q::CE; i++) out[xoff<T>(sub, i)] = v[i] * scale;
}

}  // namespace

void dequantize_f16_dev(uint32_t type, const void *w, size_t row_bytes, int64_t n_rows, int64_t n_cols, __half *dst,
                        cudaStream_t stream) {
    const bool ok = dispatch_type(type, n_cols, [&](auto tag) {
        constexpr int T = decltype(tag)::value;
        const int64_t cpr = n_cols / QTraits<T>::CE, total = cpr * n_rows;
        if (total == 0) return;
        dequantize_f16_kernel<T><<<unsigned((total + 255) / 256), 256, 0, stream>>>(
            static_cast<const uint8_t *>(w), row_bytes, n_rows, cpr, n_cols, dst);
    });
    TACTIC_CHECK(ok, TACTIC_ERR_UNSUPPORTED, "CUDA dequantize: unsupported type " + std::to_string(type));
}

void get_rows_dev(uint32_t type, const void *w, size_t row_bytes, int64_t n_cols, const int32_t *rows, int n,
                  float scale, float *dst, cudaStream_t stream) {
    const bool ok = dispatch_type(type, n_cols, [&](auto tag) {
        constexpr int T = decltype(tag)::value;
        const int64_t cpr = n_cols / QTraits<T>::CE, total = cpr * n;
        if (total == 0) return;
        get_rows_kernel<T><<<unsigned((total + 255) / 256), 256, 0, stream>>>(static_cast<const uint8_t *>(w),
                                                                               row_bytes, rows, n, cpr, n_cols,
                                                                               scale, dst);
    });
    TACTIC_CHECK(ok, TACTIC_ERR_UNSUPPORTED, "CUDA get_rows: unsupported type " + std::to_string(type));
}

bool type_supported(uint32_t type) {
    return dispatch_type(type, 8, [](auto) {});
}

void dequantize(uint32_t type, const void *src, size_t row_bytes, int64_t n_rows, int64_t n_per_row, float *dst) {
    require_device();
    const size_t src_bytes = row_bytes * size_t(n_rows), dst_bytes = sizeof(float) * size_t(n_rows * n_per_row);
    const int copies = bench_copies(src_bytes);
    std::vector<DevBuf> d_src;
    for (int i = 0; i < copies; i++) {
        d_src.emplace_back(src_bytes);
        d_src.back().upload(src, src_bytes);
    }
    DevBuf d_dst(dst_bytes);
    d_dst.poison();
    const bool ok = dispatch_type(type, n_per_row, [&](auto tag) {
        constexpr int T = decltype(tag)::value;
        const int64_t cpr = n_per_row / QTraits<T>::CE;
        const int64_t total = cpr * n_rows;
        if (total == 0) return;
        const int threads = 256;
        const unsigned blocks = unsigned((total + threads - 1) / threads);
        auto launch = [&](int copy) {
            dequantize_kernel<T><<<blocks, threads>>>(d_src[copy].as<uint8_t>(), row_bytes, n_rows, cpr,
                                                      n_per_row, d_dst.as<float>());
        };
        launch(0);
        check_launch("dequantize_kernel");
        d_dst.download(dst, dst_bytes);
        bench(launch, copies);
    });
    TACTIC_CHECK(ok, TACTIC_ERR_UNSUPPORTED, "CUDA dequantize: unsupported type " + std::to_string(type));
}

}  // namespace cuda
}  // namespace tactic
