// Dequantization of whole rows on the GPU: one thread per chunk (quant_blocks.cuh).
#include "cuda_backend.h"
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

}  // namespace

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
