// C ABI test hook of the CPU forward pass's element-wise ops (cpu/ops.h) on a chosen kernel
// path, so tests can hold the scalar, AVX2 and AVX-512 versions to one reference.
#include <string>

#include "../cpu/ops.h"
#include "../quant.h"
#include "guard.h"
#include "tactic_internal.h"  // declares this hook

extern "C" {

TACTIC_API tactic_status tactic_bench_elementwise(int32_t op, float *x, const float *u, int64_t n, float scale,
                                                  uint16_t *dst, int32_t impl) {
    return tactic::guard([&] {
        TACTIC_REQUIRE_ARG(op >= 0 && op <= 3,
                           "elementwise: op must be 0 (GELU), 1 (SiLU), 2 (f16 round) or 3 (f16 store)");
        TACTIC_REQUIRE_ARG(n >= 0 && n <= (int64_t(1) << 30), "elementwise: n out of range");
        TACTIC_REQUIRE_ARG(x || n == 0, "elementwise: x must not be NULL");
        TACTIC_REQUIRE_ARG(op > 1 || u || n == 0, "elementwise: the gated ops need u");
        TACTIC_REQUIRE_ARG(op != 3 || dst || n == 0, "elementwise: op 3 needs dst");
        TACTIC_REQUIRE_ARG(impl >= 0 && impl <= 3, "elementwise: impl must be 0, 1, 2 or 3");
        TACTIC_CHECK(tactic::kernel_impl_available(impl), TACTIC_ERR_UNSUPPORTED,
                     "elementwise: this CPU cannot run kernel implementation " + std::to_string(impl));
        const int use = impl == 0 ? tactic::kernel_impl() : impl;
        const int m = int(n);
        switch (op) {
            case 0: tactic::gated_activation_impl(use, x, u, m, tactic::Activation::GeluTanh); break;
            case 1: tactic::gated_activation_impl(use, x, u, m, tactic::Activation::Silu); break;
            case 2: tactic::round_to_f16_impl(use, x, m, scale, dst); break;
            default: tactic::store_f16_impl(use, x, m, dst); break;
        }
    });
}

}  // extern "C"
