// Where the key of a position sits in a cache head (kept apart from attention.h so that
// the AVX-512 kernel file includes nothing else).
#pragma once

#include <cstdint>

namespace tactic {

// Position p's cache row: list[p - base] (a sliding-window ring that wraps, or Tactic's
// selection) or p + base (a flat range).
struct KeyMap {
    const int32_t *list = nullptr;
    int base = 0;
    int64_t row(int p) const { return list ? list[p - base] : int64_t(p) + base; }
};

}  // namespace tactic
