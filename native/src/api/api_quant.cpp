// C ABI: tensor types, (de)quantization and the dot product as matmul computes it.
// Used by the converter (K-quant output) and by tests that hold the kernels to
// gguf.quants and to each other.
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "../cpu/matmul.h"
#include "../cpu/weight_memory.h"
#include "../threadpool.h"
#include "../quant.h"
#include "guard.h"
#include "tactic_internal.h"  // defines hooks declared there

namespace tactic {
namespace {

constexpr int64_t kMaxElements = int64_t(1) << 40;  // keeps every byte count far from overflow

const TypeTraits &known_type(int32_t type, const char *what) {
    const TypeTraits &t = type_traits(uint32_t(type));
    TACTIC_CHECK(type >= 0 && t.block_size > 0, TACTIC_ERR_INVALID_ARGUMENT,
                 std::string(what) + ": unknown tensor type id " + std::to_string(type));
    return t;
}

void check_count(const TypeTraits &t, int64_t n, const char *what) {
    TACTIC_REQUIRE_ARG(n >= 0 && n <= kMaxElements, std::string(what) + ": element count " + std::to_string(n) +
                                                         " out of range");
    TACTIC_REQUIRE_ARG(n % t.block_size == 0, std::string(what) + ": element count " + std::to_string(n) +
                                                  " is not a multiple of the " + t.name + " block size " +
                                                  std::to_string(t.block_size));
}

}  // namespace
}  // namespace tactic

extern "C" {

TACTIC_API size_t tactic_type_row_size(int32_t type, int64_t n) {
    const tactic::TypeTraits &t = tactic::type_traits(uint32_t(type));
    if (type < 0 || t.block_size == 0 || n < 0 || n > (int64_t(1) << 40) || n % t.block_size) return 0;
    return tactic::row_size(uint32_t(type), n);
}

TACTIC_API int32_t tactic_type_block_size(int32_t type) {
    return type < 0 ? 0 : tactic::type_traits(uint32_t(type)).block_size;
}

TACTIC_API tactic_status tactic_dequantize(int32_t type, const void *src, size_t src_size, int64_t n, float *dst) {
    return tactic::guard([&] {
        const tactic::TypeTraits &t = tactic::known_type(type, "dequantize");
        tactic::check_count(t, n, "dequantize");
        TACTIC_CHECK(t.supported, TACTIC_ERR_UNSUPPORTED,
                     std::string("dequantize: tensor type ") + t.name + " is not supported");
        TACTIC_REQUIRE_ARG((src && dst) || n == 0, "dequantize: src and dst must not be NULL");
        const size_t need = tactic::row_size(uint32_t(type), n);
        TACTIC_REQUIRE_ARG(src_size >= need, "dequantize: " + std::to_string(n) + " " + t.name + " elements need " +
                                                 std::to_string(need) + " bytes, src holds " +
                                                 std::to_string(src_size));
        if (n) tactic::dequantize_row(uint32_t(type), src, dst, n);
    });
}

TACTIC_API tactic_status tactic_quantize(int32_t type, const float *src, int64_t n_rows, int64_t n_per_row,
                                         void *dst, size_t dst_size) {
    return tactic::guard([&] {
        const tactic::TypeTraits &t = tactic::known_type(type, "quantize");
        tactic::check_count(t, n_per_row, "quantize");
        TACTIC_REQUIRE_ARG(n_rows >= 0 && n_rows <= tactic::kMaxElements &&
                               (n_per_row == 0 || n_rows <= tactic::kMaxElements / n_per_row),
                           "quantize: n_rows out of range");
        TACTIC_CHECK(tactic::can_quantize(uint32_t(type)), TACTIC_ERR_UNSUPPORTED,
                     std::string("quantize: no quantizer for tensor type ") + t.name);
        const int64_t total = n_rows * n_per_row;
        TACTIC_REQUIRE_ARG((src && dst) || total == 0, "quantize: src and dst must not be NULL");
        const size_t row = tactic::row_size(uint32_t(type), n_per_row);
        const size_t need = row * size_t(n_rows);
        TACTIC_REQUIRE_ARG(dst_size >= need, "quantize: " + std::to_string(n_rows) + " rows of " +
                                                 std::to_string(n_per_row) + " " + t.name + " elements need " +
                                                 std::to_string(need) + " bytes, dst holds " +
                                                 std::to_string(dst_size));
        for (int64_t r = 0; r < n_rows && n_per_row > 0; r++)
            tactic::quantize_row(uint32_t(type), src + r * n_per_row, static_cast<uint8_t *>(dst) + size_t(r) * row,
                                 n_per_row);
    });
}

TACTIC_API tactic_status tactic_vec_dot(int32_t type, const void *w, size_t w_size, const float *x, int64_t n,
                                        int32_t impl, float *out) {
    return tactic::guard([&] {
        const tactic::TypeTraits &t = tactic::known_type(type, "vec_dot");
        tactic::check_count(t, n, "vec_dot");
        TACTIC_CHECK(t.supported, TACTIC_ERR_UNSUPPORTED,
                     std::string("vec_dot: tensor type ") + t.name + " is not supported");
        TACTIC_REQUIRE_ARG(impl >= 0 && impl <= 3,
                           "vec_dot: impl must be 0 (best), 1 (scalar), 2 (AVX2) or 3 (AVX-512)");
        TACTIC_CHECK(tactic::kernel_impl_available(impl), TACTIC_ERR_UNSUPPORTED,
                     "vec_dot: this CPU cannot run kernel implementation " + std::to_string(impl));
        TACTIC_REQUIRE_ARG(out && ((w && x) || n == 0), "vec_dot: w, x and out must not be NULL");
        const size_t need = tactic::row_size(uint32_t(type), n);
        TACTIC_REQUIRE_ARG(w_size >= need, "vec_dot: " + std::to_string(n) + " " + t.name + " elements need " +
                                               std::to_string(need) + " bytes, w holds " + std::to_string(w_size));
        const uint32_t vt = tactic::vec_dot_type(uint32_t(type));
        std::vector<uint8_t> act(tactic::row_size(vt, n) + 64);
        tactic::quantize_activation(uint32_t(type), x, act.data(), n, impl);
        *out = n ? tactic::vec_dot_kernel(uint32_t(type), impl)(n, w, act.data()) : 0.f;
    });
}

TACTIC_API tactic_status tactic_bench_matmul(int32_t type, const void *w, size_t w_size, int64_t rows, int64_t n,
                                             const float *x, int64_t n_tokens, float *y, int32_t impl,
                                             int32_t n_threads, int32_t n_iter, double *seconds) {
    return tactic::guard([&] {
        const tactic::TypeTraits &t = tactic::known_type(type, "bench_matmul");
        tactic::check_count(t, n, "bench_matmul");
        TACTIC_CHECK(t.supported, TACTIC_ERR_UNSUPPORTED,
                     std::string("bench_matmul: tensor type ") + t.name + " is not supported");
        TACTIC_REQUIRE_ARG(impl >= 0 && impl <= 3, "bench_matmul: impl must be 0, 1, 2 or 3");
        TACTIC_CHECK(tactic::kernel_impl_available(impl), TACTIC_ERR_UNSUPPORTED,
                     "bench_matmul: this CPU cannot run kernel implementation " + std::to_string(impl));
        TACTIC_REQUIRE_ARG(rows > 0 && rows <= (int64_t(1) << 30) && n > 0 && n_tokens > 0 &&
                               n_tokens <= (int64_t(1) << 20) && n_threads >= 0 && n_threads <= 256,
                           "bench_matmul: rows, n, n_tokens or n_threads out of range");
        TACTIC_REQUIRE_ARG(w && x && y, "bench_matmul: w, x and y must not be NULL");
        const size_t row_bytes = tactic::row_size(uint32_t(type), n);
        TACTIC_REQUIRE_ARG(rows <= int64_t(w_size / row_bytes),
                           "bench_matmul: w holds " + std::to_string(w_size) + " bytes, " + std::to_string(rows) +
                               " rows need " + std::to_string(row_bytes * size_t(rows)));
        tactic::Tensor W;
        W.data = w;
        W.type = uint32_t(type);
        W.ne0 = n;
        W.ne1 = rows;
        W.row_bytes = row_bytes;
        // impl 3: the weights repacked as a model's are at load; impl 0 keeps them as
        // stored (on an AVX-512 CPU: the tiles that gather each group instead)
        tactic::WeightCopy packed;
        if (impl == 3 && tactic::can_repack(uint32_t(type))) {
            packed = tactic::alloc_weight_copy(row_bytes * size_t(rows));
            tactic::repack_rows(uint32_t(type), n, rows, w, row_bytes, packed.get());
            W.packed = packed.get();
        }
        tactic::ThreadPool pool(n_threads > 0 ? n_threads : tactic::ThreadPool::hardware_threads());
        std::vector<uint8_t> scratch;
        const int iters = n_iter > 0 ? n_iter : 1;
        const auto start = std::chrono::steady_clock::now();
        for (int i = 0; i < iters; i++) tactic::matmul(W, x, n, n_tokens, y, rows, pool, scratch, impl);
        const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - start;
        if (seconds) *seconds = dt.count() / iters;
    });
}

TACTIC_API tactic_status tactic_cpu_set_option(const char *name, int64_t value) {
    return tactic::guard([&] {
        TACTIC_REQUIRE_ARG(name, "cpu_set_option: name must not be NULL");
        TACTIC_REQUIRE_ARG(tactic::set_cpu_option(name, value),
                           std::string("cpu_set_option: unknown option or value '") + name + "' = " + std::to_string(value));
    });
}

TACTIC_API tactic_status tactic_bench_stream_read(size_t bytes, int32_t n_threads, int32_t n_iter, double *seconds) {
    return tactic::guard([&] {
        TACTIC_REQUIRE_ARG(bytes >= 4096 && bytes <= (size_t(1) << 34) && n_threads >= 0 && n_threads <= 256,
                           "bench_stream_read: bytes or n_threads out of range");
        tactic::WeightCopy buf = tactic::alloc_weight_copy(bytes);
        std::memset(buf.get(), 1, bytes);
        tactic::ThreadPool pool(n_threads > 0 ? n_threads : tactic::ThreadPool::hardware_threads());
        const int64_t words = int64_t(bytes / 64) * 8, parts = pool.size();
        const uint64_t *p = reinterpret_cast<const uint64_t *>(buf.get());
        std::vector<uint64_t> sums(size_t(parts) * 8, 0);
        auto read_once = [&] {
            pool.parallel_for(parts, 1, [&](int64_t b, int64_t e) {
                for (int64_t part = b; part < e; part++) {
                    uint64_t s[8] = {};
                    const int64_t w0 = words / parts * part / 8 * 8;
                    const int64_t w1 = part + 1 == parts ? words : words / parts * (part + 1) / 8 * 8;
                    for (int64_t i = w0; i < w1; i += 8)
                        for (int k = 0; k < 8; k++) s[k] += p[i + k];
                    for (int k = 0; k < 8; k++) sums[size_t(part) * 8 + k] += s[k];
                }
            });
        };
        read_once();
        const int iters = n_iter > 0 ? n_iter : 1;
        const auto start = std::chrono::steady_clock::now();
        for (int i = 0; i < iters; i++) read_once();
        const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - start;
        uint64_t all = 0;
        for (uint64_t v : sums) all += v;
        TACTIC_CHECK(all != 0, TACTIC_ERR_INTERNAL, "bench_stream_read: nothing read");
        if (seconds) *seconds = dt.count() / iters;
    });
}

TACTIC_API tactic_status tactic_bench_quantize_activation(int32_t weight_type, const float *x, int64_t n,
                                                         int32_t impl, void *dst, size_t dst_size) {
    return tactic::guard([&] {
        const tactic::TypeTraits &t = tactic::known_type(weight_type, "quantize_activation");
        TACTIC_CHECK(t.supported, TACTIC_ERR_UNSUPPORTED,
                     std::string("quantize_activation: tensor type ") + t.name + " is not supported");
        const uint32_t vt = tactic::vec_dot_type(uint32_t(weight_type));
        tactic::check_count(tactic::type_traits(vt), n, "quantize_activation");
        TACTIC_REQUIRE_ARG(impl >= 0 && impl <= 3, "quantize_activation: impl must be 0, 1, 2 or 3");
        TACTIC_CHECK(tactic::kernel_impl_available(impl), TACTIC_ERR_UNSUPPORTED,
                     "quantize_activation: this CPU cannot run kernel implementation " + std::to_string(impl));
        TACTIC_REQUIRE_ARG((x && dst) || n == 0, "quantize_activation: x and dst must not be NULL");
        const size_t need = tactic::row_size(vt, n);
        TACTIC_REQUIRE_ARG(dst_size >= need, "quantize_activation: needs " + std::to_string(need) +
                                                 " bytes, dst holds " + std::to_string(dst_size));
        // Q8_K has f32/i16 fields: quantize into an aligned buffer, then copy out.
        std::vector<uint8_t> tmp(need + 1);
        if (n) tactic::quantize_activation(uint32_t(weight_type), x, tmp.data(), n, impl);
        std::memcpy(dst, tmp.data(), need);
    });
}

}  // extern "C"
