// Native unit tests of the KV cache: ring slots and ranges, what truncate keeps with and
// without checkpoints, lazily committed accounting, and attention over a wrapped ring
// equal (bit for bit) to attention over a flat cache holding the same positions.
// The library exports only the C ABI, so the sources are compiled into this test.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#if defined(__x86_64__) && !defined(TACTIC_X86)
#define TACTIC_X86 1
#endif
#include "../src/common.h"
#include "../src/threadpool.cpp"
#include "../src/cpu_features.cpp"
#include "../src/cpu/attention.cpp"
#include "../src/cpu/attention_segments.cpp"
#include "../src/kv_cache.cpp"
#if defined(TACTIC_X86)
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#include "../src/cpu/attention_avx2.cpp"
#pragma GCC pop_options
#endif

using namespace tactic;

#include "check.h"

namespace {
constexpr int kWindow = 16, kBatch = 4, kD = 8;

HParams small_hp() {
    HParams hp;
    hp.n_layer = 2;
    hp.n_head_kv = 2;
    hp.head_dim = kD;
    hp.sliding_window = kWindow;
    hp.layer_is_swa = {1, 0};  // layer 0 sliding-window, layer 1 global
    return hp;
}

// Writes positions [pos0, pos0 + n): every element of key/value p holds p.
void write(KVCache &kv, int pos0, int n) {
    kv.begin_write(pos0, n);
    for (int il = 0; il < kv.n_layer; il++)
        for (int h = 0; h < kv.n_head_kv; h++)
            for (int p = pos0; p < pos0 + n; p++)
                for (int d = 0; d < kD; d++) kv.k_at(il, h, p)[d] = kv.v_at(il, h, p)[d] = uint16_t(p);
}

// The ring still holds what a token at position n attends.
bool window_intact(KVCache &kv, int n) {
    for (int p = kv.window_start(n); p < n; p++)
        if (kv.k_at(0, 1, p)[0] != uint16_t(p)) return false;
    return true;
}

void test_slots_and_ranges() {
    KVCache kv;
    kv.allocate(small_hp(), 256, kBatch, false);
    CHECK(kv.slots[0] == kWindow + kBatch && kv.slots[1] == 256);
    CHECK(kv.ring[0] && !kv.ring[1]);
    int seg[4];
    CHECK(kv.slot_ranges(0, 3, 19, seg) == 1 && seg[0] == 3 && seg[1] == 19);
    CHECK(kv.slot_ranges(0, 15, 31, seg) == 2 && seg[0] == 15 && seg[1] == 20 && seg[2] == 0 && seg[3] == 11);
    CHECK(kv.slot_ranges(1, 0, 200, seg) == 1 && seg[0] == 0 && seg[1] == 200);
    KVCache small;  // a ring no smaller than the context is not used
    small.allocate(small_hp(), kWindow + kBatch, kBatch, false);
    CHECK(!small.ring[0]);
    KVCache full;
    full.allocate(small_hp(), 256, kBatch, true);
    CHECK(!full.ring[0] && full.slots[0] == 256);
}

void test_truncate_and_checkpoints() {
    KVCache kv;
    kv.allocate(small_hp(), 256, kBatch, false);
    for (int p = 0; p < 40; p += kBatch) write(kv, p, kBatch);
    CHECK(window_intact(kv, 40));
    CHECK(kv.truncate(38) == 38 && window_intact(kv, 38));  // within n_batch of the end
    write(kv, 38, 2);
    CHECK(kv.truncate(20) == 0);  // the ring forgot 5..19 and there is no checkpoint
    for (int p = 0; p < 40; p += kBatch) write(kv, p, kBatch);
    kv.checkpoint(40);
    for (int p = 40; p < 80; p += kBatch) write(kv, p, kBatch);
    CHECK(kv.truncate(39) == 39 && window_intact(kv, 39));  // restored from the checkpoint
    for (int p = 39; p < 79; p++) write(kv, p, 1);
    CHECK(kv.truncate(40) == 39);  // the checkpoint only knows the sequence up to 39 now
    CHECK(window_intact(kv, 39));
    const KVAccounting a = kv.accounting();
    CHECK(a.checkpoints > 0 && a.reserved == 2ull * 2 * kD * 2 * uint64_t(kWindow + kBatch + 256));
    CHECK(kv.truncate(0) == 0 && kv.accounting().committed == 0 && kv.accounting().checkpoints == 0);
}

void test_ring_attention_equals_flat() {
    const int D = 64, n_q = 2, window = 100, slots = window + 32, n = 300;
    std::mt19937 rng(3);
    std::normal_distribution<float> N(0, 1);
    std::vector<uint16_t> Kf(size_t(n) * D), Vf(size_t(n) * D), Kr(size_t(slots) * D), Vr(size_t(slots) * D);
    for (int p = 0; p < n; p++)
        for (int d = 0; d < D; d++) {
            Kf[size_t(p) * D + d] = f32_to_f16(N(rng));
            Vf[size_t(p) * D + d] = f32_to_f16(N(rng));
        }
    std::vector<float> q(size_t(n_q) * D);
    for (auto &x : q) x = N(rng) * 0.3f;
    ThreadPool pool(2);
    for (int pos : {150, 263, 299}) {  // windows that wrap the ring
        for (int p = pos - window + 1; p <= pos; p++)
            for (int d = 0; d < D; d++) {
                Kr[size_t(p % slots) * D + d] = Kf[size_t(p) * D + d];
                Vr[size_t(p % slots) * D + d] = Vf[size_t(p) * D + d];
            }
        const int lo = pos - window + 1, a = lo % slots, b = a + window;
        int seg[4] = {a, std::min(b, slots), 0, b - slots};
        const int ns = b > slots ? 2 : 1;
        std::vector<float> flat(size_t(n_q) * D), ring(size_t(n_q) * D), ring2(size_t(n_q) * D);
        attention_split(q.data(), n_q, D, Kf.data(), Vf.data(), lo, pos + 1, flat.data(), pool);
        attention_segments(q.data(), n_q, D, Kr.data(), Vr.data(), seg, ns, lo, ring.data(), pool);
        attend_segments(q.data(), n_q, D, Kr.data(), Vr.data(), seg, ns, lo, ring2.data());
        std::vector<float> flat2(size_t(n_q) * D);
        attention_chunked(q.data(), n_q, D, Kf.data(), Vf.data(), KeyMap{}, lo, pos + 1, flat2.data());
        CHECK(ring == flat);
        CHECK(ring2 == flat2);
        CHECK(ring2 == flat);  // one thread, chunk by chunk: the split's bytes
    }
}
}  // namespace

int main() {
    test_slots_and_ranges();
    test_truncate_and_checkpoints();
    test_ring_attention_equals_flat();
    if (g_failures) {
        std::fprintf(stderr, "%d failures\n", g_failures);
        return 1;
    }
    std::printf("test_kv_cache: ok\n");
    return 0;
}
