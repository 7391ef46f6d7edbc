// KeyClusters as bytes, for saved sessions: a restored context keeps the clusters it had
// instead of clustering its keys again. The key copies (keys_sorted) are not stored:
// they are the cache's own rows in cluster order, gathered again on restore.
//
// Layout (little-endian): i32 begin, end, base_end, D, n_clusters, iterations, then
// u32-counted arrays: centroids (f32), half_norm2 (f32), cluster_of, order, offsets,
// i32 block count, block_tok_end, block_cluster_end (i32).
#include "cluster_state.h"

#include <cstring>
#include <string>

#include "../common.h"

namespace tactic {

namespace {

template <class T>
void put(std::vector<uint8_t> &out, const T *src, size_t n) {
    const size_t at = out.size();
    out.resize(at + n * sizeof(T));
    if (n) std::memcpy(out.data() + at, src, n * sizeof(T));
}

void put_i32(std::vector<uint8_t> &out, int32_t v) { put(out, &v, 1); }

template <class T>
void put_array(std::vector<uint8_t> &out, const std::vector<T> &v) {
    const uint32_t n = uint32_t(v.size());
    put(out, &n, 1);
    put(out, v.data(), v.size());
}

void damaged(const char *what) {
    throw Error(TACTIC_ERR_FORMAT, std::string("context state: Tactic clusters damaged (") + what + ")");
}

template <class T>
void take_array(ByteCursor &in, std::vector<T> &v, size_t expected) {
    uint32_t n = 0;
    in.take(&n, sizeof n);
    if (n != expected) damaged("array length");
    v.resize(n);
    in.take(v.data(), size_t(n) * sizeof(T));
}

}  // namespace

void ByteCursor::take(void *dst, size_t n) {
    if (size_t(end - p) < n) damaged("truncated");
    if (n) std::memcpy(dst, p, n);
    p += n;
}

int32_t ByteCursor::i32() {
    int32_t v = 0;
    take(&v, sizeof v);
    return v;
}

void write_clusters(const KeyClusters &kc, std::vector<uint8_t> &out) {
    for (int v : {kc.begin, kc.end, kc.base_end, kc.D, kc.n_clusters, kc.iterations}) put_i32(out, v);
    put_array(out, kc.centroids);
    put_array(out, kc.half_norm2);
    put_array(out, kc.cluster_of);
    put_array(out, kc.order);
    put_array(out, kc.offsets);
    put_i32(out, int32_t(kc.block_tok_end.size()));
    put_array(out, kc.block_tok_end);
    put_array(out, kc.block_cluster_end);
}

KeyClusters read_clusters(ByteCursor &in, int D, int n_past) {
    KeyClusters kc;
    kc.begin = in.i32();
    kc.end = in.i32();
    kc.base_end = in.i32();
    kc.D = in.i32();
    kc.n_clusters = in.i32();
    kc.iterations = in.i32();
    if (kc.D != D) damaged("head size");
    if (kc.begin < 0 || kc.begin > kc.end || kc.end > n_past || kc.base_end < kc.begin || kc.base_end > kc.end)
        damaged("token range");
    const int n = kc.end - kc.begin;
    if (kc.n_clusters < 0 || kc.n_clusters > n) damaged("cluster count");
    take_array(in, kc.centroids, size_t(kc.n_clusters) * size_t(D));
    take_array(in, kc.half_norm2, size_t(kc.n_clusters));
    take_array(in, kc.cluster_of, size_t(n));
    take_array(in, kc.order, size_t(n));
    take_array(in, kc.offsets, size_t(kc.n_clusters) + 1);
    const int32_t n_blocks = in.i32();
    if (n_blocks < 0 || n_blocks > n) damaged("block count");
    const uint32_t nb = uint32_t(n_blocks);
    take_array(in, kc.block_tok_end, nb);
    take_array(in, kc.block_cluster_end, nb);

    // Every index the decode path follows must stay in bounds.
    for (int32_t c : kc.cluster_of)
        if (c < 0 || c >= kc.n_clusters) damaged("cluster id");
    if (kc.offsets[0] != 0 || kc.offsets.back() != n) damaged("offsets");
    for (int c = 0; c < kc.n_clusters; c++)
        if (kc.offsets[size_t(c)] > kc.offsets[size_t(c) + 1]) damaged("offsets");
    std::vector<uint8_t> seen(size_t(n), 0);
    for (int c = 0; c < kc.n_clusters; c++)
        for (int o = kc.offsets[size_t(c)]; o < kc.offsets[size_t(c) + 1]; o++) {
            const int32_t t = kc.order[size_t(o)];
            if (t < kc.begin || t >= kc.end || seen[size_t(t - kc.begin)] || kc.cluster_of[size_t(t - kc.begin)] != c)
                damaged("order");
            seen[size_t(t - kc.begin)] = 1;
        }
    int prev_tok = kc.begin, prev_cl = 0;
    for (uint32_t b = 0; b < nb; b++) {
        if (kc.block_tok_end[b] <= prev_tok || kc.block_cluster_end[b] < prev_cl) damaged("blocks");
        prev_tok = kc.block_tok_end[b];
        prev_cl = kc.block_cluster_end[b];
    }
    if (nb && (prev_tok != kc.end || prev_cl != kc.n_clusters)) damaged("blocks");
    kc.keys_valid = false;
    return kc;
}

}  // namespace tactic
