// K-means over the keys of one (layer, KV head): Tactic's clusters. The cluster ids are
// kept with a cluster-contiguous token order, so a decode step can visit the tokens of
// the best-scoring clusters first.
#pragma once

#include <cstdint>
#include <vector>

#include "../threadpool.h"

namespace tactic {

struct KeyClusters {
    int begin = 0, end = 0;   // tokens [begin, end) are clustered
    int base_end = 0;         // end when K-means ran (later tokens were assigned incrementally)
    int D = 0;
    int n_clusters = 0;       // non-empty clusters only
    int iterations = 0;       // Lloyd iterations run
    std::vector<float> centroids;      // [n_clusters][D]
    std::vector<float> half_norm2;     // 0.5 * |centroid|^2 (nearest = argmax x.c - this)
    std::vector<int32_t> cluster_of;   // [end - begin]: cluster of token begin + i
    std::vector<int32_t> order;        // the clustered tokens grouped by cluster
    std::vector<int32_t> offsets;      // [n_clusters + 1]: cluster c is order[offsets[c], offsets[c+1])
    // A copy of the clustered keys in `order` (f16 rows): the exact scores of a cluster's
    // members then read contiguous memory instead of rows scattered over the cache.
    std::vector<uint16_t> keys_sorted;
    bool keys_valid = false;

    const uint16_t *key_in_order(int o) const { return keys_sorted.data() + size_t(o) * D; }
    // Refreshes keys_sorted from the cache if the order changed without it.
    void gather_keys(const uint16_t *K);

    int size() const { return end - begin; }
    bool empty() const { return n_clusters == 0; }
    // Rebuilds order/offsets from cluster_of (counting sort: tokens ascend inside a cluster).
    void rebuild_order();
    // Assigns tokens [end, new_end) to their nearest centroids (centroids unchanged).
    void assign_new(const uint16_t *K, int new_end);
    // Forgets tokens from n_keep on (n_keep >= base_end).
    void drop_from(int n_keep);

    // Block mode: the clustered range is a sequence of blocks [block_tok_end[i-1],
    // block_tok_end[i]), each clustered on its own; block i owns clusters
    // [block_cluster_end[i-1], block_cluster_end[i]). Appending a block touches only its
    // own clusters, order entries and key copies (no whole-cache work on the decode path).
    std::vector<int32_t> block_tok_end, block_cluster_end;
    // Clusters tokens [end, new_end) alone and appends them (block mode).
    void append_block(const uint16_t *K, int new_end, int cluster_size, int max_iter, uint64_t seed,
                      ThreadPool &pool);
    // Keeps only the blocks that end at or before `limit` (block mode).
    void drop_blocks_after(int limit);
};

// An empty block-mode KeyClusters whose clustered range starts (and ends) at `begin`.
KeyClusters empty_blocks(int D, int begin);

// Clusters keys K[t*D ..] (f16) of tokens [begin, end) into about (end-begin)/cluster_size
// clusters: initial centroids are distinct keys sampled with `seed`, then at most max_iter
// Lloyd iterations (squared Euclidean distance), stopping early once no assignment changes.
KeyClusters cluster_keys(const uint16_t *K, int D, int begin, int end, int cluster_size, int max_iter,
                         uint64_t seed, ThreadPool &pool);

}  // namespace tactic
