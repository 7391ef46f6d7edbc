#include "bpe.h"

#include <queue>

#include "../common.h"
#include "../gguf.h"
#include "utf8.h"

namespace tactic {

namespace {

struct Symbol {
    uint32_t offset, length;  // bytes of the word; length 0 once merged away
    int32_t id;               // symbol id, -1 if the text is no token and no merge part
    int32_t prev, next;
};

struct Candidate {
    int32_t rank;
    int32_t left, right;
    int32_t left_id, right_id;  // the pair as seeded (detects stale entries)
    int32_t result;
};

// Lowest rank first; equal ranks: leftmost first.
struct CandidateOrder {
    bool operator()(const Candidate &a, const Candidate &b) const {
        return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    }
};

}  // namespace

int32_t BpeTokenizer::symbol(std::string_view s) const {
    const int32_t id = vocab_.find(s);
    if (id >= 0) return id;
    auto it = extra_.find(s);
    return it == extra_.end() ? -1 : it->second;
}

int32_t BpeTokenizer::intern(const std::string &s) {
    const int32_t id = symbol(s);
    if (id >= 0) return id;
    extra_text_.push_back(s);
    const int32_t new_id = vocab_.size() + int32_t(extra_.size());
    extra_.emplace(std::string_view(extra_text_.back()), new_id);
    return new_id;
}

BpeTokenizer::BpeTokenizer(const Vocab &vocab, const GGUFFile &file, bool ignore_merges)
    : vocab_(vocab), ignore_merges_(ignore_merges) {
    const GGUFValue *merges = file.get_arr("tokenizer.ggml.merges", GGUFType::STRING);
    TACTIC_CHECK(merges, TACTIC_ERR_FORMAT, "tokenizer.ggml.merges is missing (needed by a gpt2 tokenizer)");
    TACTIC_CHECK(merges->arr.size() < size_t(INT32_MAX), TACTIC_ERR_FORMAT, "tokenizer.ggml.merges is too long");
    pairs_.reserve(merges->arr.size() * 2);
    for (size_t i = 0; i < merges->arr.size(); i++) {
        const std::string &m = merges->arr[i].str;
        // "A B", cut at the first space after the first byte (A may itself be a space).
        const size_t cut = m.find(' ', 1);
        if (cut == std::string::npos || cut + 1 >= m.size()) continue;  // unusable, as in llama.cpp
        const std::string left = m.substr(0, cut), right = m.substr(cut + 1);
        const int32_t l = intern(left), r = intern(right), res = intern(left + right);
        pairs_.emplace(pair_key(l, r), Merge{int32_t(i), res});  // a repeated pair keeps its first rank
    }
}

void BpeTokenizer::tokenize_word(std::string_view word, std::vector<int32_t> &out) const {
    if (word.empty()) return;
    if (ignore_merges_) {
        const int32_t id = vocab_.find(word);
        if (id >= 0) {
            out.push_back(id);
            return;
        }
    }
    std::vector<Symbol> sym;
    sym.reserve(word.size());
    for (size_t i = 0; i < word.size();) {
        const size_t len = std::min(utf8::lead_len(uint8_t(word[i])), word.size() - i);
        const int32_t idx = int32_t(sym.size());
        sym.push_back({uint32_t(i), uint32_t(len), symbol(word.substr(i, len)), idx - 1, -1});
        if (idx > 0) sym[idx - 1].next = idx;
        i += len;
    }

    std::priority_queue<Candidate, std::vector<Candidate>, CandidateOrder> queue;
    auto seed = [&](int32_t l, int32_t r) {
        if (l < 0 || r < 0 || sym[l].id < 0 || sym[r].id < 0) return;
        auto it = pairs_.find(pair_key(sym[l].id, sym[r].id));
        if (it == pairs_.end()) return;
        queue.push({it->second.rank, l, r, sym[l].id, sym[r].id, it->second.result});
    };
    for (int32_t i = 1; i < int32_t(sym.size()); i++) seed(i - 1, i);

    while (!queue.empty()) {
        const Candidate c = queue.top();
        queue.pop();
        Symbol &l = sym[c.left], &r = sym[c.right];
        if (l.length == 0 || r.length == 0 || l.id != c.left_id || r.id != c.right_id) continue;  // stale
        l.length += r.length;
        l.id = c.result;
        r.length = 0;
        l.next = r.next;
        if (l.next >= 0) sym[l.next].prev = c.left;
        seed(l.prev, c.left);
        seed(c.left, l.next);
    }

    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        if (sym[i].id >= 0 && sym[i].id < vocab_.size()) {
            out.push_back(sym[i].id);
            continue;
        }
        // Not a token (rare): each byte of its text that is a 1-byte token, others dropped.
        for (char b : word.substr(sym[i].offset, sym[i].length)) {
            const int32_t t = vocab_.find(std::string_view(&b, 1));
            if (t >= 0) out.push_back(t);
        }
    }
}

}  // namespace tactic
