// Which backend a context gets: the CPU always exists; CUDA when the library was built
// with it and a usable device answers.
#include "backend.h"
#include "common.h"

#ifdef TACTIC_HAVE_CUDA
#include "cuda_backend.h"
#endif

namespace tactic {

int32_t resolve_device(int32_t requested) {
    if (requested != TACTIC_DEVICE_AUTO) return requested;
#ifdef TACTIC_HAVE_CUDA
    try {
        return cuda::device_count() > 0 ? TACTIC_DEVICE_CUDA : TACTIC_DEVICE_CPU;
    } catch (...) {
        return TACTIC_DEVICE_CPU;
    }
#else
    return TACTIC_DEVICE_CPU;
#endif
}

#ifndef TACTIC_HAVE_CUDA
std::unique_ptr<Backend> make_cuda_backend(const Model &, int, int, const tactic_context_params *, int) {
    fail(TACTIC_ERR_UNSUPPORTED, "device=cuda: this build of libtactic has no CUDA backend (built without nvcc)");
}
#endif

}  // namespace tactic
