#include "cpu_features.h"

#if defined(TACTIC_X86)
#include <cpuid.h>
#endif

namespace tactic {

bool cpu_has_avx2_fma_f16c() {
#if defined(TACTIC_X86)
    // F16C through CPUID: clang's __builtin_cpu_supports does not know "f16c".
    static const bool ok = [] {
        __builtin_cpu_init();
        unsigned a = 0, b = 0, c = 0, d = 0;
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __get_cpuid(1, &a, &b, &c, &d) &&
               (c & bit_F16C) != 0;
    }();
    return ok;
#else
    return false;
#endif
}

bool cpu_has_avx512_vnni() {
#if defined(TACTIC_X86)
    // __builtin_cpu_supports also checks that the OS saves the zmm/mask state (XCR0).
    static const bool ok = [] {
        __builtin_cpu_init();
        return cpu_has_avx2_fma_f16c() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vnni");
    }();
    return ok;
#else
    return false;
#endif
}

}  // namespace tactic
