// Kernel selection: which activation format each weight type consumes, and whether the
// scalar or the SIMD dot products run (chosen once from the CPU, overridable for tests).
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#if defined(TACTIC_X86)
#endif

#include "../cpu_features.h"
#include "../quant.h"
#include "blocks.h"

namespace tactic {

using namespace q;

#if defined(TACTIC_X86)
bool q::cpu_has_avx2_fma() { return cpu_has_avx2_fma_f16c(); }
#endif

bool simd_available() {
#if defined(TACTIC_X86)
    return cpu_has_avx2_fma();
#else
    return false;
#endif
}

bool kernel_impl_available(int impl) {
    switch (impl) {
        case 0: case 1: return true;
        case 2: return simd_available();
#if defined(TACTIC_X86)
        case 3: return cpu_has_avx512_vnni();
#endif
        default: return false;
    }
}

namespace {

// The default path: the widest this CPU runs. Every path gives a token the same logits
// whatever batch it is evaluated in (tests/test_batch_independence.py), so the choice
// never lets prefix reuse change a greedy answer.
int best_impl() {
    if (kernel_impl_available(3)) return 3;
    return kernel_impl_available(2) ? 2 : 1;
}

std::atomic<int> g_impl{0};  // 0: not chosen yet

// The first choice: the default path, unless TACTIC_KERNELS asks for another one that
// this CPU has ("scalar" for the reference, to tell a kernel bug from a model bug
// without rebuilding; "avx2"; "avx512" for the AVX-512 kernels).
int initial_impl() {
    const char *env = std::getenv("TACTIC_KERNELS");
    if (env && std::strcmp(env, "scalar") == 0) return 1;
    if (env && std::strcmp(env, "avx2") == 0 && kernel_impl_available(2)) return 2;
    if (env && std::strcmp(env, "avx512") == 0 && kernel_impl_available(3)) return 3;
    return best_impl();
}

int current_impl() {
    int v = g_impl.load(std::memory_order_relaxed);
    if (v == 0) {
        v = initial_impl();
        g_impl.store(v, std::memory_order_relaxed);
    }
    return v;
}

[[noreturn]] void unsupported(const char *what, uint32_t type) {
    fail(TACTIC_ERR_UNSUPPORTED, std::string(what) + ": tensor type " + type_traits(type).name + " is not supported");
}

}  // namespace

bool set_kernel_impl(int impl) {
    if (impl == 0) impl = best_impl();
    if (impl < 1 || !kernel_impl_available(impl)) return false;
    g_impl.store(impl, std::memory_order_relaxed);
    return true;
}

int kernel_impl() { return current_impl(); }

const char *simd_name() {
    switch (current_impl()) {
        case 3: return "avx512";
        case 2: return "avx2";
        default: return "scalar";
    }
}

uint32_t vec_dot_type(uint32_t weight_type) {
    switch (weight_type) {
        case GGML_F32: return GGML_F32;
        case GGML_F16: return GGML_F16;
        case GGML_BF16: return GGML_BF16;
        case GGML_Q4_0: case GGML_Q5_0: case GGML_Q8_0: return GGML_Q8_0;
        case GGML_Q4_1: case GGML_Q5_1: return GGML_Q8_1;
        case GGML_Q4_K: case GGML_Q5_K: case GGML_Q6_K: return GGML_Q8_K;
        default: unsupported("vec_dot_type", weight_type);
    }
}

void quantize_activation(uint32_t weight_type, const float *x, void *y, int64_t n, int impl) {
    if (impl == 0) impl = current_impl();
#if defined(TACTIC_X86)
    // AVX-512 reuses the AVX2 activation quantizers (every path writes the same bytes).
    const bool simd = impl >= 2 && simd_available();
#else
    const bool simd = false;
#endif
    switch (vec_dot_type(weight_type)) {
        case GGML_F32: std::memcpy(y, x, size_t(n) * 4); return;
        case GGML_F16: quantize_row(GGML_F16, x, y, n); return;
        case GGML_BF16: quantize_row(GGML_BF16, x, y, n); return;
#if defined(TACTIC_X86)
        case GGML_Q8_0:
            return simd ? quantize_act_q8_0_avx2(x, static_cast<BlockQ8_0 *>(y), n)
                        : quantize_act_q8_0(x, static_cast<BlockQ8_0 *>(y), n);
        case GGML_Q8_1:
            return simd ? quantize_act_q8_1_avx2(x, static_cast<BlockQ8_1 *>(y), n)
                        : quantize_act_q8_1(x, static_cast<BlockQ8_1 *>(y), n);
        case GGML_Q8_K:
            return simd ? quantize_act_q8_K_avx2(x, static_cast<BlockQ8_K *>(y), n)
                        : quantize_act_q8_K(x, static_cast<BlockQ8_K *>(y), n);
#else
        case GGML_Q8_0: quantize_act_q8_0(x, static_cast<BlockQ8_0 *>(y), n); return;
        case GGML_Q8_1: quantize_act_q8_1(x, static_cast<BlockQ8_1 *>(y), n); return;
        case GGML_Q8_K: quantize_act_q8_K(x, static_cast<BlockQ8_K *>(y), n); return;
#endif
        default: unsupported("quantize_activation", weight_type);
    }
}

VecDotFn vec_dot_kernel(uint32_t weight_type, int impl) {
    if (impl == 0) impl = current_impl();
    VecDotFn f = nullptr;
#if defined(TACTIC_X86)
    if (impl == 3 && kernel_impl_available(3)) f = vec_dot_avx512(weight_type);
    if (!f && impl >= 2 && simd_available()) f = vec_dot_avx2(weight_type);
#endif
    if (!f) f = vec_dot_scalar(weight_type);
    if (!f) unsupported("vec_dot", weight_type);
    return f;
}

DotTileFn dot_tile_kernel(uint32_t weight_type, int impl) {
    if (impl == 0) impl = current_impl();
    DotTileFn f = nullptr;
#if defined(TACTIC_X86)
    if (impl == 3 && kernel_impl_available(3)) f = dot_tile_avx512(weight_type);
    if (!f && impl >= 2 && simd_available()) f = dot_tile_avx2(weight_type);
#endif
    if (!f) f = dot_tile_scalar(weight_type);
    if (!f) unsupported("matmul", weight_type);
    return f;
}

DotTileFn dot_tile_regrouped(uint32_t weight_type, int impl, bool packed) {
    if (impl == 0) impl = current_impl();
#if defined(TACTIC_X86)
    if (impl == 3 && kernel_impl_available(3)) return dot_tile_regrouped_avx512(weight_type, packed);
#else
    (void)packed;
#endif
    return nullptr;
}

size_t regrouped_act_size(uint32_t weight_type, int64_t n) {
#if defined(TACTIC_X86)
    return regrouped_act_row_size(vec_dot_type(weight_type) == GGML_Q8_1, n);
#else
    return 0;
#endif
}

void regroup_activation(uint32_t weight_type, int64_t n, const void *act_row, void *dst) {
#if defined(TACTIC_X86)
    if (kernel_impl_available(3)) return regroup_act(vec_dot_type(weight_type) == GGML_Q8_1, n, act_row, dst);
#endif
    fail(TACTIC_ERR_UNSUPPORTED, "regroup_activation: needs AVX-512");
}

float vec_dot(uint32_t weight_type, int64_t n, const void *w, const void *a) {
    return vec_dot_kernel(weight_type, 0)(n, w, a);
}

}  // namespace tactic
