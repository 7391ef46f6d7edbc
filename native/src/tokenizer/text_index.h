// Token text -> id look-up, the tokenizers' hot path (every candidate merge asks it).
// Open addressing over 8-byte slots (a hash tag and an id) keeps a probe within one
// or two cache lines; the texts themselves are compared only when the tags agree.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tactic {

class TextIndex {
public:
    // Indexes texts[0..n); the vector must outlive the index and not change. Returns
    // the first id whose text repeats an earlier one, or -1.
    int32_t build(const std::vector<std::string> &texts);
    int32_t find(std::string_view s) const;

    static uint64_t hash(std::string_view s);

private:
    struct Slot {
        uint32_t tag;  // high half of the hash
        int32_t id;    // -1: empty
    };
    const std::vector<std::string> *texts_ = nullptr;
    std::vector<Slot> slots_;
    uint64_t mask_ = 0;
};

}  // namespace tactic
