// Memory for the weights the CPU repacks at load, and the decode streaming knobs.
//
// Decode reads every weight byte once per token, from DRAM: a private copy on 4 KB pages
// costs a TLB walk and a cold start of the hardware prefetcher every 4 KB, so the copy
// is asked for transparent huge pages (2 MB) where the kernel allows it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

namespace tactic {

struct WeightMemoryFree {
    size_t bytes = 0;
    void operator()(uint8_t *p) const;
};
using WeightCopy = std::unique_ptr<uint8_t[], WeightMemoryFree>;

// `bytes` of writable memory (64-byte aligned; 2 MB aligned and madvise'd for huge pages
// when large enough). Throws Error (out of memory) on failure.
WeightCopy alloc_weight_copy(size_t bytes);

// Research knobs (tactic_cpu_set_option): software prefetch distance of the decode tiles
// in bytes (0: none) and its hint (0: T0, 1: T1, 2: T2, 3: NTA); whether weight copies
// ask for huge pages; where the decode attention prefetches K/V to.
struct DecodeStreaming {
    size_t prefetch_bytes;
    int prefetch_hint;
    bool huge_pages;
    bool attn_prefetch_l2;  // decode attention's K/V prefetches into L2 instead of L1
};
const DecodeStreaming &decode_streaming();
bool set_cpu_option(const char *name, int64_t value);

}  // namespace tactic
