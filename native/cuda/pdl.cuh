// Programmatic dependent launch (Hopper, sm_90+). A kernel launched with the PDL launch
// attribute may begin while the kernel before it on the stream is still running, so
// that its start-up (and its loads of static data such as weights) hides the previous
// kernel's tail. The protocol every kernel of a PDL chain follows:
// - pdl_wait() in every block before reading anything an earlier kernel of the chain
//   wrote (weights, constants and other data no kernel of the chain writes may be read
//   before it). Every block calls it, even one that reads nothing earlier kernels wrote:
//   a grid's completion is what the next kernel's pdl_wait() waits for, and it must not
//   complete before its own predecessor did.
// - pdl_trigger() once the next kernel may start being scheduled (it still waits in its
//   own pdl_wait() for this grid to complete and flush its writes).
// Both are no-ops below sm_90 and in a kernel launched without the attribute.
#pragma once

#include <string>
#include <utility>

#include "cuda_util.cuh"

namespace tactic {
namespace cuda {

// Whether launch_pdl sets the attribute: option `pdl` on and a device of compute
// capability 9.0 or newer.
bool pdl_enabled();

// kernel<<<grid, block, smem, stream>>>(args...), with the PDL attribute when
// pdl_enabled(): only for kernels that follow the protocol above.
template <class... KArgs, class... Args>
void launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args &&...args) {
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cfg.attrs = attr;
    cfg.numAttrs = pdl_enabled() ? 1 : 0;
    const cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
    if (e != cudaSuccess) {  // which kernel, and the configuration it was refused
        const char *name = nullptr;
        if (cudaFuncGetName(&name, reinterpret_cast<const void *>(kernel)) != cudaSuccess || !name) name = "a kernel";
        check(e, (std::string("launch of ") + name + " (grid " + std::to_string(grid.x) + "x" + std::to_string(grid.y) +
                  ", block " + std::to_string(block.x) + ", " + std::to_string(smem) + " bytes of shared memory)")
                     .c_str());
    }
}

#ifdef __CUDACC__
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
#endif

}  // namespace cuda
}  // namespace tactic
