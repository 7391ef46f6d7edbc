// The instruction sets of the *_avx2.cpp and *_avx512.cpp kernel files, given to their own
// functions by a pragma rather than to the whole file by a compiler flag. With a flag, every
// template and inline function such a file instantiates (std::vector's members, say) is also
// compiled with the wider instructions, and the linker keeps one copy of each for the whole
// library: where it kept that file's copy, code that runs without the run-time CPU check
// executed AVX-512 (an illegal instruction in KVCache::allocate on an AMD EPYC without it).
// Usage, after every other include of the file:
//   #include "../simd_target.h"
//   TACTIC_TARGET_AVX512_BEGIN
//   #include "../simd_avx512.h"   (its helpers get the target too)
//   ... the kernels ...
//   TACTIC_TARGET_END
// Templates defined in headers included before the BEGIN keep the baseline instructions
// (GCC and Clang both take a function's target from where it is defined);
// scripts/check_simd_symbols.py checks the built objects for a shared copy with wide code.
#pragma once

#define TACTIC_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define TACTIC_TARGET_BEGIN(isa) TACTIC_PRAGMA(clang attribute push(__attribute__((target(isa))), apply_to = function))
#define TACTIC_TARGET_END TACTIC_PRAGMA(clang attribute pop)
#else
#define TACTIC_TARGET_BEGIN(isa) TACTIC_PRAGMA(GCC push_options) TACTIC_PRAGMA(GCC target(isa))
#define TACTIC_TARGET_END TACTIC_PRAGMA(GCC pop_options)
#endif
#define TACTIC_TARGET_AVX2_BEGIN TACTIC_TARGET_BEGIN("avx2,fma,f16c")
#define TACTIC_TARGET_AVX512_BEGIN \
    TACTIC_TARGET_BEGIN("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
