// TEMPORARY skeleton (replaced by the quant work): kernel selection.
#include "../quant.h"

namespace tactic {
namespace {
int g_impl = 1;
}
bool set_kernel_impl(int impl) {
    if (impl == 2) return false;
    g_impl = impl == 0 ? 1 : impl;
    return true;
}
int kernel_impl() { return g_impl; }
const char *simd_name() { return "scalar"; }
}  // namespace tactic
