// Device discovery and the backend's options. The CUDA runtime is linked statically
// and loads the driver lazily, so on a machine without one every query here simply
// reports no device.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cuda_backend.h"
#include "cuda_util.cuh"
#include "device_limits.cuh"
#include "pdl.cuh"

namespace tactic {
namespace cuda {

namespace {
double g_last_ms = -1.0;
}

Options &options() {
    static Options o;
    return o;
}
void set_last_ms(double ms) { g_last_ms = ms; }
double last_ms() { return g_last_ms; }

namespace {
int64_t g_graph_kernels = -1, g_graph_programmatic = -1;
}
void set_graph_stats(int64_t kernel_nodes, int64_t programmatic_edges) {
    g_graph_kernels = kernel_nodes;
    g_graph_programmatic = programmatic_edges;
}
void graph_stats(int64_t &kernel_nodes, int64_t &programmatic_edges) {
    kernel_nodes = g_graph_kernels;
    programmatic_edges = g_graph_programmatic;
}

int device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();  // no driver / no device: not an error for the caller
        return 0;
    }
    return n;
}

std::string device_name(int device) {
    TACTIC_CHECK(device >= 0 && device < device_count(), TACTIC_ERR_INVALID_ARGUMENT,
                 "no CUDA device " + std::to_string(device));
    cudaDeviceProp prop;
    TACTIC_CU(cudaGetDeviceProperties(&prop, device));
    return prop.name;
}

void require_device() {
    TACTIC_CHECK(device_count() > 0, TACTIC_ERR_UNSUPPORTED, "no usable CUDA device (driver or GPU missing)");
    TACTIC_CU(cudaSetDevice(0));
}

int sm_count() {
    static int n = 0;
    if (n == 0) {
        int dev = 0;
        TACTIC_CU(cudaGetDevice(&dev));
        TACTIC_CU(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    }
    return n;
}

const DeviceLimits &device_limits() {
    static DeviceLimits lim;
    if (lim.cc_major == 0) {  // (filled in a copy: an error leaves it unset, to be raised again)
        DeviceLimits l;
        int dev = 0;
        TACTIC_CU(cudaGetDevice(&dev));
        TACTIC_CU(cudaDeviceGetAttribute(&l.cc_major, cudaDevAttrComputeCapabilityMajor, dev));
        TACTIC_CU(cudaDeviceGetAttribute(&l.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
        // The programming guide's opt-in limits of the architectures the default build covers.
        static const struct {
            const char *name;
            int major, optin;
        } kCards[] = {{"sm_80", 8, 163 * 1024}, {"sm_86", 8, 99 * 1024}, {"sm_89", 8, 99 * 1024}};
        if (const char *e = std::getenv("TACTIC_CUDA_EMULATE"); e && *e) {
            bool known = false;
            for (const auto &c : kCards)
                if (std::strcmp(e, c.name) == 0) {
                    l.cc_major = std::min(l.cc_major, c.major);
                    l.smem_optin = std::min(l.smem_optin, c.optin);
                    l.emulated = c.name;
                    known = true;
                }
            TACTIC_CHECK(known, TACTIC_ERR_INVALID_ARGUMENT,
                         std::string("TACTIC_CUDA_EMULATE must be sm_80, sm_86 or sm_89, not ") + e);
        }
        lim = l;
    }
    return lim;
}

namespace {
// A block's shared memory: the kernel's static part plus `dynamic`.
size_t block_smem(const void *kernel, size_t dynamic) {
    cudaFuncAttributes fa;
    TACTIC_CU(cudaFuncGetAttributes(&fa, kernel));
    return fa.sharedSizeBytes + dynamic;
}
}  // namespace

bool smem_fits(const void *kernel, size_t dynamic) {
    return block_smem(kernel, dynamic) <= size_t(device_limits().smem_optin);
}

void set_dynamic_smem(const void *kernel, size_t dynamic, const char *what) {
    const size_t need = block_smem(kernel, dynamic), have = size_t(device_limits().smem_optin);
    TACTIC_CHECK(need <= have, TACTIC_ERR_UNSUPPORTED,
                 std::string(what) + " needs " + std::to_string(need) + " bytes of shared memory a block; this GPU" +
                     (device_limits().emulated ? std::string(" (emulating ") + device_limits().emulated + ")" : "") +
                     " allows " + std::to_string(have));
    TACTIC_CU(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(dynamic)));
}

bool pdl_enabled() { return options().pdl != 0 && device_limits().cc_major >= 9; }

bool set_option(const std::string &name, int64_t value) {
    Options &o = options();
    if (name == "bench_iters") {
        TACTIC_CHECK(value >= 0 && value <= 100000, TACTIC_ERR_INVALID_ARGUMENT, "bench_iters must be in [0, 100000]");
        o.bench_iters = int(value);
        if (value == 0) g_last_ms = -1.0;
    } else if (name == "matvec_rows") {
        TACTIC_CHECK(value == 0 || value == 1 || value == 2 || value == 4 || value == 8, TACTIC_ERR_INVALID_ARGUMENT,
                     "matvec_rows must be 0, 1, 2, 4 or 8");
        o.matvec_rows = int(value);
    } else if (name == "matvec_version") {
        TACTIC_CHECK(value >= 0 && value <= 3, TACTIC_ERR_INVALID_ARGUMENT,
                     "matvec_version must be 0, 1, 2 or 3 (3: 8-bit activations, quantized types)");
        o.matvec_version = int(value);
    } else if (name == "attn_prefetch") {
        TACTIC_CHECK(value == 0 || value == 1, TACTIC_ERR_INVALID_ARGUMENT, "attn_prefetch must be 0 or 1");
        o.attn_prefetch = int(value);
    } else if (name == "matvec_q8") {
        TACTIC_CHECK(value == 0 || value == 1, TACTIC_ERR_INVALID_ARGUMENT, "matvec_q8 must be 0 or 1");
        o.matvec_q8 = int(value);
    } else if (name == "prefill_mma") {
        TACTIC_CHECK(value >= 0 && value <= 2, TACTIC_ERR_INVALID_ARGUMENT,
                     "prefill_mma must be 0 (FMA), 1 (WMMA) or 2 (mma.sync, FlashAttention-2 style)");
        o.prefill_mma = int(value);
    } else if (name == "prefill_rows") {
        TACTIC_CHECK(value == 0 || value == 64 || value == 128, TACTIC_ERR_INVALID_ARGUMENT,
                     "prefill_rows must be 0 (default), 64 or 128");
        o.prefill_rows = int(value);
    } else if (name == "tactic_copies") {
        TACTIC_CHECK(value >= 0 && value <= 64, TACTIC_ERR_INVALID_ARGUMENT, "tactic_copies must be in [0, 64]");
        o.tactic_copies = int(value);
    } else if (name == "tactic_blocks") {
        TACTIC_CHECK(value >= 0 && value <= 65536, TACTIC_ERR_INVALID_ARGUMENT, "tactic_blocks must be in [0, 65536]");
        o.tactic_blocks = int(value);
    } else if (name == "tactic_fused") {
        TACTIC_CHECK(value == 0 || value == 1, TACTIC_ERR_INVALID_ARGUMENT, "tactic_fused must be 0 or 1");
        o.tactic_fused = int(value);
    } else if (name == "tactic_mma") {
        TACTIC_CHECK(value == 0 || value == 1, TACTIC_ERR_INVALID_ARGUMENT, "tactic_mma must be 0 or 1");
        o.tactic_mma = int(value);
    } else if (name == "tactic_group_budget") {
        TACTIC_CHECK(value == 0 || value == 1, TACTIC_ERR_INVALID_ARGUMENT, "tactic_group_budget must be 0 or 1");
        o.tactic_group_budget = int(value);
    } else if (name == "tactic_select") {
        // (2 and 6-8 were removed: 3 superseded 2; 6-8 wrote wrong lists on the H200, session 9)
        TACTIC_CHECK(value == 1 || (value >= 3 && value <= 5) || value == 9 || value == 10, TACTIC_ERR_INVALID_ARGUMENT,
                     "tactic_select must be 1, 3, 4, 5, 9 or 10");
        o.tactic_select = int(value);
    } else if (name == "tactic_score") {
        TACTIC_CHECK(value >= 2 && value <= 5, TACTIC_ERR_INVALID_ARGUMENT, "tactic_score must be in [2, 5]");
        o.tactic_score = int(value);
    } else if (name == "tactic_score_blocks") {
        TACTIC_CHECK(value >= 0 && value <= 65536, TACTIC_ERR_INVALID_ARGUMENT,
                     "tactic_score_blocks must be in [0, 65536]");
        o.tactic_score_blocks = int(value);
    } else if (name == "tactic_attend") {
        TACTIC_CHECK(value >= 1 && value <= 6, TACTIC_ERR_INVALID_ARGUMENT, "tactic_attend must be in [1, 6]");
        o.tactic_attend = int(value);
    } else if (name == "tactic_stream") {
        TACTIC_CHECK(value == 0 || value == 8, TACTIC_ERR_INVALID_ARGUMENT, "tactic_stream must be 0 or 8");
        o.tactic_stream = int(value);
    } else if (name == "tactic_cand_div") {
        TACTIC_CHECK(value >= 1 && value <= 1024, TACTIC_ERR_INVALID_ARGUMENT, "tactic_cand_div must be in [1, 1024]");
        o.tactic_cand_div = int(value);
    } else if (name == "tactic_tail") {
        TACTIC_CHECK(value == 0 || value == 1, TACTIC_ERR_INVALID_ARGUMENT, "tactic_tail must be 0 or 1");
        o.tactic_tail = int(value);
    } else if (name == "graphs") {
        TACTIC_CHECK(value == 0 || value == 1, TACTIC_ERR_INVALID_ARGUMENT, "graphs must be 0 or 1");
        o.graphs = int(value);
    } else if (name == "matvec_q8_kernel") {
        TACTIC_CHECK(value >= 3 && value <= 5, TACTIC_ERR_INVALID_ARGUMENT, "matvec_q8_kernel must be 3, 4 or 5");
        o.matvec_q8_kernel = int(value);
    } else if (name == "matvec_wait") {
        TACTIC_CHECK(value == 0 || value == 1, TACTIC_ERR_INVALID_ARGUMENT, "matvec_wait must be 0 or 1");
        o.matvec_wait = int(value);
    } else if (name == "decode_fuse") {
        TACTIC_CHECK(value >= 0 && value <= 2, TACTIC_ERR_INVALID_ARGUMENT, "decode_fuse must be 0, 1 or 2");
        o.decode_fuse = int(value);
    } else if (name == "pdl") {
        TACTIC_CHECK(value == 0 || value == 1, TACTIC_ERR_INVALID_ARGUMENT, "pdl must be 0 or 1");
        o.pdl = int(value);
    } else if (name == "merge_q8") {
        TACTIC_CHECK(value == 0 || value == 1, TACTIC_ERR_INVALID_ARGUMENT, "merge_q8 must be 0 or 1");
        o.merge_q8 = int(value);
    } else if (name == "norm_fuse") {
        TACTIC_CHECK(value == 0 || value == 1, TACTIC_ERR_INVALID_ARGUMENT, "norm_fuse must be 0 or 1");
        o.norm_fuse = int(value);
    } else if (name == "bench_graph") {
        TACTIC_CHECK(value == 0 || value == 1, TACTIC_ERR_INVALID_ARGUMENT, "bench_graph must be 0 or 1");
        o.bench_graph = int(value);
    } else if (name == "attn_kernel") {
        // (the gaps are removed variants: cuda_util.cuh, attn_kernel_valid)
        TACTIC_CHECK(attn_kernel_valid(value), TACTIC_ERR_INVALID_ARGUMENT,
                     "attn_kernel must be in [0, 11], 19, 20 or in [29, 32]");
        o.attn_kernel = int(value);
    } else if (name == "attn_splits") {
        TACTIC_CHECK(value >= 0 && value <= 4096, TACTIC_ERR_INVALID_ARGUMENT, "attn_splits must be in [0, 4096]");
        o.attn_splits = int(value);
    } else {
        return false;
    }
    return true;
}

}  // namespace cuda
}  // namespace tactic
