// KeyClusters as bytes (saved sessions): see cluster_state.cpp for the layout.
#pragma once

#include <cstdint>
#include <vector>

#include "kmeans.h"

namespace tactic {

// Reads forward through a byte range; running past its end is TACTIC_ERR_FORMAT.
struct ByteCursor {
    const uint8_t *p, *end;
    void take(void *dst, size_t n);
    int32_t i32();
};

void write_clusters(const KeyClusters &kc, std::vector<uint8_t> &out);
// The clusters of a cache holding n_past tokens of head size D, checked so that every
// index the decode path follows is in bounds (TACTIC_ERR_FORMAT otherwise). Their key
// copies must be gathered from the cache before use (keys_valid is false).
KeyClusters read_clusters(ByteCursor &in, int D, int n_past);

}  // namespace tactic
