// The KV cache: f16 keys and values per layer, laid out [n_head_kv][slots][head_dim]
// so that each KV head's keys are contiguous (what attention and clustering scan).
//
// Global-attention layers have one slot per position (slots = n_ctx). Sliding-window
// layers keep a ring of window + n_batch slots, position p in slot p % slots: a batch
// of up to n_batch new tokens never overwrites a key that a token of the batch still
// attends. Keys carry RoPE already, so slot order does not matter to attention.
//
// Memory is reserved for the whole context but committed as positions are written
// (anonymous mappings are backed by pages on first touch), so a 32K context costs
// what its filled part costs. accounting() reports both figures.
//
// A ring forgets positions older than its slots. Prefix reuse may need them again
// (a new question about the same document truncates back to the document's end), so
// checkpoint() copies the rings at the current position and truncate() restores the
// copy when the rings themselves no longer hold what the kept prefix needs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "arch.h"

namespace tactic {

// Zero-filled memory that the OS commits page by page on first write.
class LazyBuffer {
public:
    LazyBuffer() = default;
    explicit LazyBuffer(size_t n_elems);
    ~LazyBuffer();
    LazyBuffer(LazyBuffer &&o) noexcept;
    LazyBuffer &operator=(LazyBuffer &&o) noexcept;
    LazyBuffer(const LazyBuffer &) = delete;
    LazyBuffer &operator=(const LazyBuffer &) = delete;
    uint16_t *data() const { return p_; }
    // Gives the whole pages inside elements [a, b) back to the OS (they read as zero again).
    void release(size_t a, size_t b);

private:
    uint16_t *p_ = nullptr;
    size_t n_ = 0;
};

struct KVAccounting {
    uint64_t reserved = 0;     // the whole context (what a flat cache would allocate)
    uint64_t committed = 0;    // positions written so far (and not released)
    uint64_t checkpoints = 0;  // copies of the sliding-window rings
    uint64_t flat = 0;         // a cache without rings: every layer n_ctx slots
};

struct KVCache {
    int n_layer = 0, n_head_kv = 0, n_ctx = 0, head_dim = 0, window = 0;
    std::vector<int> slots;  // per layer
    std::vector<uint8_t> ring;
    std::vector<LazyBuffer> k, v;  // per layer
    int ring_lo = 0;           // positions [ring_lo, n_past) are intact in every ring
    std::vector<int> touched;  // per layer: slots written since allocated or released (accounting)

    // Slots of each layer for this model and context. swa_full: no rings (every layer n_ctx).
    static std::vector<int> layer_slots(const HParams &hp, int n_ctx, int n_batch, bool swa_full);
    // Bytes of K and V for these layer slot counts.
    static uint64_t bytes_for(const HParams &hp, const std::vector<int> &slots);
    void allocate(const HParams &hp, int n_ctx_, int n_batch, bool swa_full);

    int slot(int il, int pos) const { return ring[size_t(il)] ? pos % slots[size_t(il)] : pos; }
    uint16_t *k_at(int il, int h, int pos) { return k[size_t(il)].data() + row(il, h, pos); }
    uint16_t *v_at(int il, int h, int pos) { return v[size_t(il)].data() + row(il, h, pos); }
    const uint16_t *k_at(int il, int h, int pos) const { return k[size_t(il)].data() + row(il, h, pos); }
    const uint16_t *v_at(int il, int h, int pos) const { return v[size_t(il)].data() + row(il, h, pos); }
    // The slot ranges [a, b) that hold positions [lo, hi), in position order: one, or two
    // when a ring wraps. Returns how many (pairs written to out).
    int slot_ranges(int il, int lo, int hi, int out[4]) const;

    // Before positions [pos0, pos0 + n) are written: the rings forget what they overwrite.
    void begin_write(int pos0, int n);
    // The cache is cut to n_keep positions. Returns the positions it really
    // keeps: n_keep, or less when the rings no longer hold what position n_keep attends
    // (then a checkpoint at or before n_keep is restored, or nothing is kept).
    int truncate(int n_keep);
    // Remembers the rings at position n_past (no-op without rings).
    void checkpoint(int n_past);
    // After a restore wrote positions [0, n_past) (rings: [ring_lo_, n_past)).
    void restored(int n_past, int ring_lo_);
    bool has_rings() const;
    KVAccounting accounting() const;
    // The oldest position that a token at position n attends in a sliding-window layer.
    int window_start(int n) const { return n - window + 1 > 0 ? n - window + 1 : 0; }

private:
    struct Checkpoint {
        int pos = 0, ring_lo = 0, valid_to = 0;  // valid_to: later truncations lower it
        std::vector<int> touched;                // per layer, as KVCache::touched then
        std::vector<uint16_t> k, v;              // written slots of the ring layers, back to back
    };
    std::vector<Checkpoint> checkpoints_;  // [0]: the first since the cache was emptied; then the newest
    size_t row(int il, int h, int pos) const {
        return (size_t(h) * size_t(slots[size_t(il)]) + size_t(slot(il, pos))) * size_t(head_dim);
    }
    size_t ring_elems(int il) const { return size_t(n_head_kv) * size_t(slots[size_t(il)]) * size_t(head_dim); }
    bool usable(const Checkpoint &c, int n_keep) const;
    void save_rings(Checkpoint &c) const;
    void restore_rings(const Checkpoint &c);
};

}  // namespace tactic
