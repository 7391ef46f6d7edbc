// What the kernels' dispatch may count on from the GPU: the compute capability's major
// (TMA copies and programmatic dependent launch from 9) and the shared memory a block may
// opt in to (227 KB on sm_90, 163 KB on sm_80, 99 KB on sm_86 / sm_89 workstation cards).
// Every kernel that asks for more than 48 KB goes through set_dynamic_smem, and every
// choice that depends on the architecture reads device_limits(), so that a card with less
// gets a variant that fits instead of a failed launch.
//
// Test hook: TACTIC_CUDA_EMULATE=sm_80 | sm_86 | sm_89 in the environment (read once) caps
// both at that architecture's, so that the H200 takes the paths those cards take (the
// kernels are still the build's own machine code; tests/test_gpu_emulated_arch.py).
#pragma once

#include <cstddef>

namespace tactic {
namespace cuda {

struct DeviceLimits {
    int cc_major = 0;
    int smem_optin = 0;              // bytes a block may opt in to (static + dynamic)
    const char *emulated = nullptr;  // "sm_86" etc. under TACTIC_CUDA_EMULATE, else null
};
const DeviceLimits &device_limits();

// Whether `kernel`'s static shared memory plus `dynamic` bytes fit one block here.
bool smem_fits(const void *kernel, size_t dynamic);
// Opts `kernel` in to `dynamic` bytes of shared memory; UNSUPPORTED, naming `what`, where
// the block would need more than the device allows.
void set_dynamic_smem(const void *kernel, size_t dynamic, const char *what);

template <class K>
bool smem_fits(K *kernel, size_t dynamic) {
    return smem_fits(reinterpret_cast<const void *>(kernel), dynamic);
}
template <class K>
void set_dynamic_smem(K *kernel, size_t dynamic, const char *what) {
    set_dynamic_smem(reinterpret_cast<const void *>(kernel), dynamic, what);
}

}  // namespace cuda
}  // namespace tactic
