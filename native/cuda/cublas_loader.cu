// cuBLAS, opened at run time. libtactic must load on machines with no GPU, no driver
// and no CUDA libraries, so it links none of them dynamically: cudart is static, and
// cuBLAS (used for the f16 tensor-core GEMMs of prefill) is dlopen'ed the first time a
// CUDA context needs it. Without it, prefill falls back to the matvec kernels token by
// token (correct, slower). Only the header's types are used here.
#include <cublas_v2.h>
#include <dlfcn.h>

#include <mutex>

#include "cuda_ops.cuh"
#include "cuda_util.cuh"

namespace tactic {
namespace cuda {

namespace {
using CreateFn = cublasStatus_t (*)(cublasHandle_t *);
using SetStreamFn = cublasStatus_t (*)(cublasHandle_t, cudaStream_t);
using SetMathModeFn = cublasStatus_t (*)(cublasHandle_t, cublasMath_t);
using GemmExFn = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                    const void *, const void *, cudaDataType, int, const void *, cudaDataType, int,
                                    const void *, void *, cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
}  // namespace

Cublas *Cublas::get() {
    static Cublas *instance = nullptr;
    static std::once_flag once;
    std::call_once(once, [] {
        const char *names[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so"};
        void *lib = nullptr;
        for (const char *n : names)
            if ((lib = dlopen(n, RTLD_NOW | RTLD_LOCAL))) break;
        if (!lib) return;
        auto create = reinterpret_cast<CreateFn>(dlsym(lib, "cublasCreate_v2"));
        auto set_stream = dlsym(lib, "cublasSetStream_v2");
        auto set_math = reinterpret_cast<SetMathModeFn>(dlsym(lib, "cublasSetMathMode"));
        auto gemm = dlsym(lib, "cublasGemmEx");
        cublasHandle_t h = nullptr;
        if (!create || !set_stream || !gemm || create(&h) != CUBLAS_STATUS_SUCCESS) {
            dlclose(lib);
            return;
        }
        if (set_math) set_math(h, CUBLAS_DEFAULT_MATH);
        auto *c = new Cublas();  // lives for the process, as the loaded library does
        c->lib_ = lib;
        c->handle_ = h;
        c->set_stream_ = set_stream;
        c->gemm_ex_ = gemm;
        instance = c;
    });
    return instance;
}

void Cublas::gemm_tn(cudaStream_t stream, int m, int n, int k, const __half *A, int lda, const __half *B, int ldb,
                     float *C, int ldc) {
    auto h = static_cast<cublasHandle_t>(handle_);
    TACTIC_CHECK(reinterpret_cast<SetStreamFn>(set_stream_)(h, stream) == CUBLAS_STATUS_SUCCESS,
                 TACTIC_ERR_INTERNAL, "cublasSetStream failed");
    const float alpha = 1.f, beta = 0.f;
    const cublasStatus_t st = reinterpret_cast<GemmExFn>(gemm_ex_)(
        h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, A, CUDA_R_16F, lda, B, CUDA_R_16F, ldb, &beta, C, CUDA_R_32F,
        ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    TACTIC_CHECK(st == CUBLAS_STATUS_SUCCESS, TACTIC_ERR_INTERNAL,
                 "cublasGemmEx failed with status " + std::to_string(int(st)));
}

}  // namespace cuda
}  // namespace tactic
