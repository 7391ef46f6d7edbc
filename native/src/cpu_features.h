// Run-time CPU feature checks: the one place that decides whether the *_avx2.cpp
// kernels (AVX2 + FMA + F16C) may run.
#pragma once

namespace tactic {

bool cpu_has_avx2_fma_f16c();

}  // namespace tactic
