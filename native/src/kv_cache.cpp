#include "kv_cache.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#define TACTIC_KV_MMAP 1
#endif

#include "common.h"

namespace tactic {

// ---- LazyBuffer ------------------------------------------------------------

LazyBuffer::LazyBuffer(size_t n_elems) : n_(n_elems) {
    if (n_ == 0) return;
    const size_t bytes = n_ * sizeof(uint16_t);
#ifdef TACTIC_KV_MMAP
    int flags = MAP_PRIVATE | MAP_ANONYMOUS;
#ifdef MAP_NORESERVE
    flags |= MAP_NORESERVE;  // reserved, not committed: pages come on first write
#endif
    void *p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    p_ = static_cast<uint16_t *>(p);
#else
    p_ = static_cast<uint16_t *>(std::calloc(n_, sizeof(uint16_t)));
    if (!p_) throw std::bad_alloc();
#endif
}

LazyBuffer::~LazyBuffer() {
    if (!p_) return;
#ifdef TACTIC_KV_MMAP
    munmap(p_, n_ * sizeof(uint16_t));
#else
    std::free(p_);
#endif
}

LazyBuffer::LazyBuffer(LazyBuffer &&o) noexcept : p_(o.p_), n_(o.n_) {
    o.p_ = nullptr;
    o.n_ = 0;
}

LazyBuffer &LazyBuffer::operator=(LazyBuffer &&o) noexcept {
    if (this != &o) {
        this->~LazyBuffer();
        p_ = o.p_;
        n_ = o.n_;
        o.p_ = nullptr;
        o.n_ = 0;
    }
    return *this;
}

void LazyBuffer::release(size_t a, size_t b) {
#ifdef TACTIC_KV_MMAP
    b = std::min(b, n_);
    if (!p_ || a >= b) return;
    const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
    uintptr_t lo = reinterpret_cast<uintptr_t>(p_ + a), hi = reinterpret_cast<uintptr_t>(p_ + b);
    lo = (lo + page - 1) / page * page;
    hi = hi / page * page;
    if (lo < hi) madvise(reinterpret_cast<void *>(lo), hi - lo, MADV_DONTNEED);
#else
    (void)a;
    (void)b;
#endif
}

// ---- KVCache ---------------------------------------------------------------

std::vector<int> KVCache::layer_slots(const HParams &hp, int n_ctx, int n_batch, bool swa_full) {
    std::vector<int> s(size_t(hp.n_layer), n_ctx);
    if (swa_full || hp.sliding_window <= 0) return s;
    const int64_t ring = int64_t(hp.sliding_window) + n_batch;
    if (ring >= n_ctx) return s;  // a ring would be no smaller
    for (int il = 0; il < hp.n_layer; il++)
        if (!hp.is_global(il)) s[size_t(il)] = int(ring);
    return s;
}

uint64_t KVCache::bytes_for(const HParams &hp, const std::vector<int> &slots) {
    uint64_t total = 0;
    for (int s : slots) total += uint64_t(s);
    return 2ull * total * uint64_t(hp.n_head_kv) * uint64_t(hp.head_dim) * sizeof(uint16_t);
}

void KVCache::allocate(const HParams &hp, int n_ctx_, int n_batch, bool swa_full) {
    n_layer = hp.n_layer;
    n_head_kv = hp.n_head_kv;
    n_ctx = n_ctx_;
    head_dim = hp.head_dim;
    window = hp.sliding_window;
    slots = layer_slots(hp, n_ctx, n_batch, swa_full);
    ring.assign(size_t(n_layer), 0);
    touched.assign(size_t(n_layer), 0);
    k.clear();
    v.clear();
    for (int il = 0; il < n_layer; il++) {
        ring[size_t(il)] = slots[size_t(il)] < n_ctx;
        k.emplace_back(ring_elems(il));
        v.emplace_back(ring_elems(il));
    }
    ring_lo = 0;
    checkpoints_.clear();
}

void KVCache::restored(int n_past, int ring_lo_) {
    for (int il = 0; il < n_layer; il++) touched[size_t(il)] = std::min(slots[size_t(il)], n_past);
    ring_lo = ring_lo_;
    checkpoints_.clear();
}

bool KVCache::has_rings() const {
    for (uint8_t r : ring)
        if (r) return true;
    return false;
}

int KVCache::slot_ranges(int il, int lo, int hi, int out[4]) const {
    if (lo >= hi) return 0;
    const int s = slots[size_t(il)];
    if (!ring[size_t(il)]) {
        out[0] = lo;
        out[1] = hi;
        return 1;
    }
    const int a = lo % s, b = a + (hi - lo);  // hi - lo <= s: a ring is never asked for more
    if (b <= s) {
        out[0] = a;
        out[1] = b;
        return 1;
    }
    out[0] = a;
    out[1] = s;
    out[2] = 0;
    out[3] = b - s;
    return 2;
}

void KVCache::begin_write(int pos0, int n) {
    for (int il = 0; il < n_layer; il++) {
        int &t = touched[size_t(il)];
        t = std::max(t, std::min(slots[size_t(il)], pos0 + n));
        if (ring[size_t(il)]) ring_lo = std::max(ring_lo, pos0 + n - slots[size_t(il)]);
    }
}

bool KVCache::usable(const Checkpoint &c, int n_keep) const {
    return n_keep <= c.valid_to && c.ring_lo <= window_start(n_keep);
}

int KVCache::truncate(int n_keep) {
    int kept = n_keep;
    if (has_rings() && ring_lo > window_start(n_keep)) {
        // The rings lost keys that position n_keep attends: the newest usable checkpoint,
        // cut to n_keep, or nothing.
        kept = 0;
        const Checkpoint *best = nullptr;
        for (const Checkpoint &c : checkpoints_) {
            const int at = std::min(n_keep, c.valid_to);
            if (usable(c, at) && at > kept) {
                kept = at;
                best = &c;
            }
        }
        if (best) {
            restore_rings(*best);
        } else {
            ring_lo = 0;  // nothing kept: every later position is written again
        }
    }
    // Checkpoints describe the old sequence only up to where it is kept.
    for (Checkpoint &c : checkpoints_) c.valid_to = std::min(c.valid_to, kept);
    checkpoints_.erase(std::remove_if(checkpoints_.begin(), checkpoints_.end(),
                                      [&](const Checkpoint &c) { return !usable(c, c.valid_to); }),
                       checkpoints_.end());
    if (kept == 0) checkpoints_.clear();
    // Whole pages past the kept positions go back to the OS (global layers; rings when emptied).
    for (int il = 0; il < n_layer; il++) {
        const bool r = ring[size_t(il)];
        if (r && kept > 0) continue;
        const int from = r ? 0 : kept;
        if (touched[size_t(il)] <= from) continue;
        const size_t s = size_t(slots[size_t(il)]), D = size_t(head_dim);
        for (int h = 0; h < n_head_kv; h++) {
            k[size_t(il)].release((size_t(h) * s + size_t(from)) * D, (size_t(h) + 1) * s * D);
            v[size_t(il)].release((size_t(h) * s + size_t(from)) * D, (size_t(h) + 1) * s * D);
        }
        touched[size_t(il)] = from;
    }
    return kept;
}

void KVCache::save_rings(Checkpoint &c) const {
    // Only the slots written so far: a ring that never filled costs what it holds.
    c.touched.assign(touched.begin(), touched.end());
    size_t total = 0;
    for (int il = 0; il < n_layer; il++)
        if (ring[size_t(il)]) total += size_t(n_head_kv) * size_t(touched[size_t(il)]) * size_t(head_dim);
    c.k.resize(total);
    c.v.resize(total);
    size_t off = 0;
    for (int il = 0; il < n_layer; il++) {
        if (!ring[size_t(il)]) continue;
        const size_t n = size_t(touched[size_t(il)]) * size_t(head_dim);
        for (int h = 0; h < n_head_kv; h++, off += n) {
            std::memcpy(c.k.data() + off, k[size_t(il)].data() + row(il, h, 0), n * sizeof(uint16_t));
            std::memcpy(c.v.data() + off, v[size_t(il)].data() + row(il, h, 0), n * sizeof(uint16_t));
        }
    }
}

void KVCache::restore_rings(const Checkpoint &c) {
    size_t off = 0;
    for (int il = 0; il < n_layer; il++) {
        if (!ring[size_t(il)]) continue;
        const size_t n = size_t(c.touched[size_t(il)]) * size_t(head_dim);
        for (int h = 0; h < n_head_kv; h++, off += n) {
            std::memcpy(k[size_t(il)].data() + row(il, h, 0), c.k.data() + off, n * sizeof(uint16_t));
            std::memcpy(v[size_t(il)].data() + row(il, h, 0), c.v.data() + off, n * sizeof(uint16_t));
        }
        touched[size_t(il)] = std::max(touched[size_t(il)], c.touched[size_t(il)]);
    }
    ring_lo = c.ring_lo;
}

void KVCache::checkpoint(int n_past) {
    if (!has_rings() || n_past <= 0) return;
    // Keep the first checkpoint since the cache was emptied (a document's end, typically)
    // and the newest one; a checkpoint at the same position is refreshed.
    Checkpoint *dst = nullptr;
    for (Checkpoint &c : checkpoints_)
        if (c.pos == n_past) dst = &c;
    if (!dst) {
        if (checkpoints_.size() < 2) checkpoints_.emplace_back();
        dst = &checkpoints_.back();
    }
    dst->pos = dst->valid_to = n_past;
    dst->ring_lo = ring_lo;
    save_rings(*dst);
}

KVAccounting KVCache::accounting() const {
    KVAccounting a;
    const uint64_t per_slot = 2ull * uint64_t(n_head_kv) * uint64_t(head_dim) * sizeof(uint16_t);
    for (int il = 0; il < n_layer; il++) {
        a.reserved += per_slot * uint64_t(slots[size_t(il)]);
        a.committed += per_slot * uint64_t(touched[size_t(il)]);
        a.flat += per_slot * uint64_t(n_ctx);
    }
    for (const Checkpoint &c : checkpoints_) a.checkpoints += (c.k.size() + c.v.size()) * sizeof(uint16_t);
    return a;
}

}  // namespace tactic
