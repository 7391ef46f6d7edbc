// A context's evaluated state as one byte blob: the K/V of the cached positions
// (sliding-window rings: the positions they still hold), the last logits row and
// Tactic's clusters, so that a restored context neither re-reads nor re-clusters.
//
// Layout (little-endian): u32 magic, u32 version, i32 n_layer, n_head_kv, head_dim,
// n_ctx, window, n_vocab, n_past, n_logits (0|1), then per layer i32 first position
// stored, then per layer and KV head the K rows, then the V rows, of positions
// [first, n_past), then n_logits * n_vocab f32, then (version 2) u32 byte count and
// TacticAttention::state_bytes() (0 bytes without Tactic). Version 1 blobs (no
// clusters; they are rebuilt from the keys) are still read.
#include <cstring>
#include <string>

#include "backend.h"
#include "common.h"
#include "forward.h"
#include "tactic/tactic_attention.h"

namespace tactic {

namespace {
constexpr uint32_t kMagic = 0x3153564bu;  // "KVS1"
constexpr uint32_t kVersion = 2;
constexpr int kHeaderInts = 10;

struct Writer {
    uint8_t *p;
    void raw(const void *src, size_t n) {
        std::memcpy(p, src, n);
        p += n;
    }
    void i32(int32_t v) { raw(&v, 4); }
};

struct Reader {
    const uint8_t *p, *end;
    void raw(void *dst, size_t n) {
        TACTIC_CHECK(size_t(end - p) >= n, TACTIC_ERR_FORMAT, "context state: the data is truncated");
        std::memcpy(dst, p, n);
        p += n;
    }
    int32_t i32() {
        int32_t v;
        raw(&v, 4);
        return v;
    }
};
}  // namespace

void Context::settle_tactic() {
    sync();
    if (!tactic_ || n_past_ <= 0 || n_past_ >= n_ctx_) return;
    const int next = n_past_ + 1;  // the tokens the next decode step attends
    if (params_.attention != TACTIC_ATTN_TACTIC && next < params_.tactic_min_ctx) return;
    for (int il = 0; il < model_.hp.n_layer; il++)
        if (model_.hp.is_global(il)) tactic_->prepare(il, kv_.k_at(il, 0, 0), next, *pool_);
}

void Context::prepare_state() {
    sync();
    if (backend_) backend_->kv_to_host(kv_, n_past_);
    settle_tactic();
}

size_t Context::state_size() const {
    size_t n = 4 * (kHeaderInts + size_t(kv_.n_layer));
    const size_t row = size_t(kv_.head_dim) * sizeof(uint16_t);
    for (int il = 0; il < kv_.n_layer; il++) {
        const int first = kv_.ring[size_t(il)] ? std::max(kv_.ring_lo, n_past_ - kv_.slots[size_t(il)]) : 0;
        n += 2 * size_t(kv_.n_head_kv) * size_t(n_past_ - first) * row;
    }
    if (n_logit_rows_ > 0) n += size_t(model_.hp.n_vocab) * sizeof(float);
    return n + 4 + (tactic_ ? tactic_->state_bytes().size() : 0);
}

void Context::state_write(uint8_t *dst, size_t size) const {
    TACTIC_CHECK(size >= state_size(), TACTIC_ERR_INVALID_ARGUMENT,
                 "context state: the buffer holds " + std::to_string(size) + " bytes, " +
                     std::to_string(state_size()) + " are needed");
    const HParams &hp = model_.hp;
    Writer w{dst};
    w.i32(int32_t(kMagic));
    w.i32(int32_t(kVersion));
    for (int v : {kv_.n_layer, kv_.n_head_kv, kv_.head_dim, n_ctx_, kv_.window, hp.n_vocab, n_past_})
        w.i32(v);
    w.i32(n_logit_rows_ > 0 ? 1 : 0);
    std::vector<int> first(size_t(kv_.n_layer));
    for (int il = 0; il < kv_.n_layer; il++) {
        first[size_t(il)] = kv_.ring[size_t(il)] ? std::max(kv_.ring_lo, n_past_ - kv_.slots[size_t(il)]) : 0;
        w.i32(first[size_t(il)]);
    }
    const size_t row = size_t(kv_.head_dim) * sizeof(uint16_t);
    for (int il = 0; il < kv_.n_layer; il++)
        for (int kind = 0; kind < 2; kind++)
            for (int h = 0; h < kv_.n_head_kv; h++)
                for (int pos = first[size_t(il)]; pos < n_past_; pos++)
                    w.raw(kind == 0 ? kv_.k_at(il, h, pos) : kv_.v_at(il, h, pos), row);
    if (n_logit_rows_ > 0) w.raw(logits(-1), size_t(hp.n_vocab) * sizeof(float));
    const std::vector<uint8_t> clusters = tactic_ ? tactic_->state_bytes() : std::vector<uint8_t>();
    w.i32(int32_t(clusters.size()));
    w.raw(clusters.data(), clusters.size());
}

void Context::state_read(const uint8_t *src, size_t size) {
    sync();
    const HParams &hp = model_.hp;
    Reader r{src, src + size};
    TACTIC_CHECK(size >= 8 && uint32_t(r.i32()) == kMagic, TACTIC_ERR_FORMAT, "context state: not a pytactic KV state");
    const uint32_t version = uint32_t(r.i32());
    TACTIC_CHECK(version == 1 || version == kVersion, TACTIC_ERR_FORMAT,
                 "context state: version " + std::to_string(version) + " (this build reads " +
                     std::to_string(kVersion) + ")");
    const int n_layer = r.i32(), n_head_kv = r.i32(), head_dim = r.i32(), n_ctx = r.i32(), window = r.i32();
    const int n_vocab = r.i32(), n_past = r.i32(), n_logits = r.i32();
    TACTIC_CHECK(n_layer == kv_.n_layer && n_head_kv == kv_.n_head_kv && head_dim == kv_.head_dim &&
                     window == kv_.window && n_vocab == hp.n_vocab,
                 TACTIC_ERR_INVALID_ARGUMENT,
                 "context state: made by another model (" + std::to_string(n_layer) + " layers x " +
                     std::to_string(n_head_kv) + " KV heads x " + std::to_string(head_dim) + ", vocabulary " +
                     std::to_string(n_vocab) + ")");
    TACTIC_CHECK(n_ctx == n_ctx_, TACTIC_ERR_INVALID_ARGUMENT,
                 "context state: made for a context of " + std::to_string(n_ctx) + " tokens, this one holds " +
                     std::to_string(n_ctx_));
    TACTIC_CHECK(n_past >= 0 && n_past <= n_ctx_ && (n_logits == 0 || n_logits == 1), TACTIC_ERR_FORMAT,
                 "context state: corrupt header");
    std::vector<int> first(static_cast<size_t>(n_layer)), keep_from(static_cast<size_t>(n_layer));
    int ring_lo = 0;
    for (int il = 0; il < n_layer; il++) {
        const int f = r.i32();
        TACTIC_CHECK(f >= 0 && f <= n_past, TACTIC_ERR_FORMAT, "context state: corrupt layer table");
        first[size_t(il)] = f;
        if (kv_.ring[size_t(il)]) {  // this ring may be smaller than the one saved (n_batch)
            keep_from[size_t(il)] = std::max(f, n_past - kv_.slots[size_t(il)]);
            ring_lo = std::max(ring_lo, keep_from[size_t(il)]);
        } else {
            TACTIC_CHECK(f == 0, TACTIC_ERR_INVALID_ARGUMENT,
                         "context state: layer " + std::to_string(il) +
                             " was saved as a sliding-window ring; this context keeps it whole");
            keep_from[size_t(il)] = 0;
        }
    }
    TACTIC_CHECK(!kv_.has_rings() || ring_lo <= kv_.window_start(n_past), TACTIC_ERR_INVALID_ARGUMENT,
                 "context state: the saved rings do not hold the window this context needs");
    const size_t row = size_t(head_dim) * sizeof(uint16_t);
    const size_t have = size_t(r.end - r.p);
    size_t want = 0;
    for (int il = 0; il < n_layer; il++) want += 2 * size_t(n_head_kv) * size_t(n_past - first[size_t(il)]) * row;
    want += size_t(n_logits) * size_t(n_vocab) * sizeof(float);
    size_t n_tactic = 0;  // version 2: u32 byte count of the Tactic section after the logits
    if (version >= 2) {
        if (have >= want + 4) {
            uint32_t v;
            std::memcpy(&v, r.p + want, 4);
            n_tactic = v;
        }
        want += 4;
    }
    TACTIC_CHECK(have == want + n_tactic, TACTIC_ERR_FORMAT,
                 "context state: " + std::to_string(have) + " bytes of data, the header says " +
                     std::to_string(want + n_tactic));
    std::shared_ptr<TacticAttention::SavedClusters> clusters;
    if (tactic_ && n_tactic > 0) clusters = tactic_->parse_state(r.end - n_tactic, n_tactic, n_past);

    // Valid: from here on nothing can fail.
    kv_.truncate(0);
    for (int il = 0; il < n_layer; il++)
        for (int kind = 0; kind < 2; kind++)
            for (int h = 0; h < n_head_kv; h++)
                for (int pos = first[size_t(il)]; pos < n_past; pos++) {
                    if (pos < keep_from[size_t(il)]) {
                        r.p += row;
                        continue;
                    }
                    r.raw(kind == 0 ? kv_.k_at(il, h, pos) : kv_.v_at(il, h, pos), row);
                }
    kv_.restored(n_past, ring_lo);
    if (backend_) {  // a split context: the GPU layers' K/V go back to the device
        backend_->truncate(0);  // the GPU's Tactic clusters the restored keys afresh
        backend_->kv_from_host(kv_, n_past);
    }
    n_past_ = n_past;
    n_logit_rows_ = n_logits;
    logits_.resize(size_t(std::max(n_logits, 1)) * size_t(n_vocab));
    if (n_logits) r.raw(logits_.data(), size_t(n_vocab) * sizeof(float));
    if (tactic_) {  // without saved clusters (or other clustering parameters) they are rebuilt lazily
        tactic_->truncate(0);
        if (clusters) tactic_->adopt_state(*clusters, [this](int il, int kh) { return kv_.k_at(il, kh, 0); });
    }
    kv_.checkpoint(n_past_);
}

}  // namespace tactic
