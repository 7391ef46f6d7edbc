#include "special_split.h"

namespace tactic {

std::vector<Fragment> split_special(std::string_view text, const Vocab &vocab, bool parse_special) {
    std::vector<Fragment> frags, next;
    if (text.empty()) return frags;
    frags.push_back({-1, 0, uint32_t(text.size())});
    for (int32_t id : vocab.special_tokens) {
        if (!parse_special && vocab.type[id] != TokenType::USER_DEFINED) continue;
        const std::string_view tok = vocab.text[id];
        // Raw fragments are substrings of the text: one search rules most tokens out.
        if (text.find(tok) == std::string_view::npos) continue;
        next.clear();
        bool cut = false;
        for (const Fragment &f : frags) {
            if (f.token >= 0 || f.length < tok.size()) {
                next.push_back(f);
                continue;
            }
            const std::string_view raw = text.substr(f.offset, f.length);
            size_t start = 0;
            for (size_t pos = raw.find(tok); pos != std::string_view::npos; pos = raw.find(tok, start)) {
                if (pos > start) next.push_back({-1, uint32_t(f.offset + start), uint32_t(pos - start)});
                next.push_back({id, 0, 0});
                start = pos + tok.size();
                cut = true;
            }
            if (start < raw.size()) next.push_back({-1, uint32_t(f.offset + start), uint32_t(raw.size() - start)});
        }
        if (cut) frags.swap(next);
    }
    return frags;
}

}  // namespace tactic
