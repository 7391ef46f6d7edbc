// Run-time CPU feature checks: the one place that decides whether the *_avx2.cpp
// kernels (AVX2 + FMA + F16C) and the *_avx512.cpp kernels (AVX-512 F/BW/VL/DQ +
// VNNI, on top of the AVX2 set) may run.
#pragma once

namespace tactic {

bool cpu_has_avx2_fma_f16c();
bool cpu_has_avx512_vnni();

}  // namespace tactic
