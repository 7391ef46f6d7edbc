#include "spm.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "utf8.h"

namespace tactic {

namespace {

struct Symbol {
    uint32_t offset, length;  // bytes of the text; length 0 once merged away
    int32_t prev, next;
};

struct Candidate {
    float score;
    int32_t left, right;
    uint32_t length;  // bytes of left + right when seeded (detects stale entries)
};

// Highest score first; equal scores: leftmost first.
struct CandidateOrder {
    bool operator()(const Candidate &a, const Candidate &b) const {
        return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
};

}  // namespace

SpmTokenizer::SpmTokenizer(const Vocab &vocab) : vocab_(vocab) {
    for (int b = 0; b < 256; b++) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "<0x%02X>", b);
        int32_t id = vocab.find(hex);
        if (id < 0) {
            const char c = char(b);
            id = vocab.find(std::string_view(&c, 1));
        }
        byte_token_[b] = id;
    }
}

void SpmTokenizer::tokenize(std::string_view text, std::vector<int32_t> &out) const {
    std::vector<Symbol> sym;
    for (size_t i = 0; i < text.size();) {
        // Validating cut: a broken sequence is one byte, so it cannot swallow the
        // bytes of the next character (llama.cpp trusts the lead byte here).
        const size_t len = utf8::char_len(text, i);
        const int32_t idx = int32_t(sym.size());
        sym.push_back({uint32_t(i), uint32_t(len), idx - 1, -1});
        if (idx > 0) sym[idx - 1].next = idx;
        i += len;
    }
    if (sym.empty()) return;

    std::priority_queue<Candidate, std::vector<Candidate>, CandidateOrder> queue;
    auto seed = [&](int32_t l, int32_t r) {
        if (l < 0 || r < 0) return;
        const uint32_t len = sym[l].length + sym[r].length;  // adjacent: one contiguous span
        const int32_t id = vocab_.find(text.substr(sym[l].offset, len));
        if (id < 0) return;
        queue.push({vocab_.score[id], l, r, len});
    };
    for (int32_t i = 1; i < int32_t(sym.size()); i++) seed(i - 1, i);

    while (!queue.empty()) {
        const Candidate c = queue.top();
        queue.pop();
        Symbol &l = sym[c.left], &r = sym[c.right];
        if (l.length == 0 || r.length == 0 || l.length + r.length != c.length) continue;  // stale
        l.length += r.length;
        r.length = 0;
        l.next = r.next;
        if (l.next >= 0) sym[l.next].prev = c.left;
        seed(l.prev, c.left);
        seed(c.left, l.next);
    }

    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        const std::string_view piece = text.substr(sym[i].offset, sym[i].length);
        const int32_t id = vocab_.find(piece);
        if (id >= 0) {
            out.push_back(id);
            continue;
        }
        // Only a lone character can miss (merges only make tokens): one token per byte.
        for (unsigned char b : piece) {
            int32_t t = byte_token_[b];
            if (t < 0) t = vocab_.unk;
            if (t >= 0) out.push_back(t);
        }
    }
}

}  // namespace tactic
