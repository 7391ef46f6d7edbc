#include "weight_memory.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "../common.h"

namespace tactic {

namespace {
constexpr size_t kHugePage = size_t(2) << 20;
// Defaults measured by scripts/bench_decode_matvec.py (job 45, docs/PERFORMANCE.md): the
// output projection on two threads took 5.5-6.5 ms with prefetches 12 KB ahead into L2
// (T1), 6.6-8.5 ms into L1 (T0: each holds one of the core's few L1 fill buffers for a
// whole DRAM round trip), 7.1-11.6 ms without software prefetch, 14-16 ms with NTA.
DecodeStreaming g_streaming{12 * 1024, 1, true, false};
}  // namespace

void WeightMemoryFree::operator()(uint8_t *p) const {
    if (!p) return;
    if (bytes) munmap(p, bytes);
    else std::free(p);
}

WeightCopy alloc_weight_copy(size_t bytes) {
    if (g_streaming.huge_pages && bytes >= kHugePage) {
        const size_t len = (bytes + kHugePage - 1) / kHugePage * kHugePage;
        // over-allocate by one huge page so the start can be 2 MB aligned
        void *raw = mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        TACTIC_CHECK(raw != MAP_FAILED, TACTIC_ERR_OUT_OF_MEMORY,
                     "cannot map " + std::to_string(bytes) + " bytes for repacked weights");
        uint8_t *base = static_cast<uint8_t *>(raw);
        uint8_t *start = reinterpret_cast<uint8_t *>((reinterpret_cast<uintptr_t>(base) + kHugePage - 1) & ~(kHugePage - 1));
        if (start > base) munmap(base, size_t(start - base));
        const size_t tail = size_t(base + len + kHugePage - (start + len));
        if (tail) munmap(start + len, tail);
#ifdef MADV_HUGEPAGE
        madvise(start, len, MADV_HUGEPAGE);  // advice only: 4 KB pages if refused
#endif
        return WeightCopy(start, WeightMemoryFree{len});
    }
    void *p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    TACTIC_CHECK(p, TACTIC_ERR_OUT_OF_MEMORY, "cannot allocate " + std::to_string(bytes) + " bytes for repacked weights");
    return WeightCopy(static_cast<uint8_t *>(p), WeightMemoryFree{0});
}

const DecodeStreaming &decode_streaming() { return g_streaming; }

bool set_cpu_option(const char *name, int64_t value) {
    if (std::strcmp(name, "decode_prefetch_bytes") == 0 && value >= 0 && value <= (int64_t(1) << 20)) {
        g_streaming.prefetch_bytes = size_t(value);
        return true;
    }
    if (std::strcmp(name, "decode_prefetch_hint") == 0 && value >= 0 && value <= 3) {
        g_streaming.prefetch_hint = int(value);
        return true;
    }
    if (std::strcmp(name, "attn_prefetch_l2") == 0 && (value == 0 || value == 1)) {
        g_streaming.attn_prefetch_l2 = value != 0;
        return true;
    }
    if (std::strcmp(name, "huge_pages") == 0 && (value == 0 || value == 1)) {
        g_streaming.huge_pages = value != 0;
        return true;
    }
    return false;
}

}  // namespace tactic
