#include "text_index.h"

#include <cstring>

namespace tactic {

uint64_t TextIndex::hash(std::string_view s) {
    // FNV-1a over 8-byte words, then a final mix: token texts are short.
    uint64_t h = 0xcbf29ce484222325ull ^ s.size();
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
        uint64_t w;
        std::memcpy(&w, s.data() + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < s.size(); i++) h = (h ^ uint8_t(s[i])) * 0x100000001b3ull;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

int32_t TextIndex::build(const std::vector<std::string> &texts) {
    texts_ = &texts;
    size_t cap = 16;
    while (cap < texts.size() * 2) cap *= 2;  // load factor <= 1/2
    slots_.assign(cap, Slot{0, -1});
    mask_ = cap - 1;
    for (size_t id = 0; id < texts.size(); id++) {
        const uint64_t h = hash(texts[id]);
        const uint32_t tag = uint32_t(h >> 32);
        for (uint64_t i = h & mask_;; i = (i + 1) & mask_) {
            Slot &s = slots_[i];
            if (s.id < 0) {
                s = Slot{tag, int32_t(id)};
                break;
            }
            if (s.tag == tag && texts[s.id] == texts[id]) return int32_t(id);
        }
    }
    return -1;
}

int32_t TextIndex::find(std::string_view s) const {
    if (slots_.empty()) return -1;
    const uint64_t h = hash(s);
    const uint32_t tag = uint32_t(h >> 32);
    for (uint64_t i = h & mask_;; i = (i + 1) & mask_) {
        const Slot &slot = slots_[i];
        if (slot.id < 0) return -1;
        if (slot.tag == tag) {
            const std::string &t = (*texts_)[slot.id];
            if (t.size() == s.size() && std::memcmp(t.data(), s.data(), s.size()) == 0) return slot.id;
        }
    }
}

}  // namespace tactic
