// Category and whitespace look-ups over the generated tables: a flat byte table
// for the Basic Multilingual Plane (built once), binary search above it.
#include "unicode.h"

#include <algorithm>
#include <vector>

namespace tactic::unicode {

namespace {

constexpr uint32_t kMaxCodepoint = 0x10FFFF;
constexpr uint32_t kFlatLimit = 0x10000;  // code points below this use the flat table

UCat category_by_search(uint32_t cp) {
    // Last run whose start is <= cp.
    const uint32_t *begin = kCategoryRuns, *end = kCategoryRuns + kCategoryRunsCount;
    const uint32_t *it = std::upper_bound(begin, end, cp, [](uint32_t v, uint32_t run) { return v < (run >> 3); });
    return it == begin ? UCat::C : UCat((*(it - 1)) & 7);
}

const std::vector<uint8_t> &flat_table() {
    static const std::vector<uint8_t> table = [] {
        std::vector<uint8_t> t(kFlatLimit);
        for (size_t i = 0; i < kCategoryRunsCount; i++) {
            const uint32_t start = kCategoryRuns[i] >> 3;
            if (start >= kFlatLimit) break;
            const uint32_t end = i + 1 < kCategoryRunsCount ? std::min(kCategoryRuns[i + 1] >> 3, kFlatLimit) : kFlatLimit;
            std::fill(t.begin() + start, t.begin() + end, uint8_t(kCategoryRuns[i] & 7));
        }
        return t;
    }();
    return table;
}

}  // namespace

UCat category(uint32_t cp) {
    if (cp < kFlatLimit) return UCat(flat_table()[cp]);
    if (cp > kMaxCodepoint) return UCat::C;
    return category_by_search(cp);
}

bool is_whitespace(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    for (size_t i = 0; i < kWhitespaceRangesCount; i++) {
        if (cp < kWhitespaceRanges[i][0]) return false;
        if (cp <= kWhitespaceRanges[i][1]) return true;
    }
    return false;
}

}  // namespace tactic::unicode
