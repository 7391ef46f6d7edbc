#include "pretokenize.h"

#include "unicode.h"
#include "utf8.h"

namespace tactic {

namespace {

using unicode::UCat;

// One decoded character: where it starts and what it is.
struct Char {
    uint32_t cp;
    uint32_t byte;  // offset of its first byte
    UCat cat;
    bool ws;
};

// A view of the characters [begin, end) of one piece. Positions are absolute
// indices; the piece's end is the text's end for look-aheads such as (?!\S).
struct Span {
    const Char *c;
    size_t begin, end;

    bool marks_join = false;  // \p{M} counts as a letter (QWEN35)

    bool L(size_t i) const { return c[i].cat == UCat::L || (marks_join && c[i].cat == UCat::M); }
    bool N(size_t i) const { return c[i].cat == UCat::N; }
    bool ws(size_t i) const { return c[i].ws; }
    // [^\s\p{L}\p{N}]  ([^\s\p{L}\p{M}\p{N}] when marks join letters)
    bool other(size_t i) const { return !c[i].ws && !L(i) && c[i].cat != UCat::N; }
    bool newline(size_t i) const { return c[i].cp == '\r' || c[i].cp == '\n'; }
    uint32_t cp(size_t i) const { return c[i].cp; }

    template <class Pred>
    size_t run(size_t i, Pred p) const {  // end of the run of p starting at i
        while (i < end && p(i)) i++;
        return i;
    }
};

inline uint32_t ascii_lower(uint32_t cp) { return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp; }

// 's 't 're 've 'm 'll 'd at p; case-insensitive for LLAMA3/QWEN2, lower-case only for GPT2.
size_t match_contraction(const Span &s, size_t p, bool any_case) {
    if (s.cp(p) != '\'' || p + 1 >= s.end) return 0;
    auto at = [&](size_t i) { return any_case ? ascii_lower(s.cp(i)) : s.cp(i); };
    const uint32_t a = at(p + 1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (p + 2 >= s.end) return 0;
    const uint32_t b = at(p + 2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

// \s+(?!\S): the whole run at the end of the piece, else all but its last character.
size_t match_ws_not_before_nonspace(const Span &s, size_t p) {
    const size_t r = s.run(p, [&](size_t i) { return s.ws(i); });
    if (r == p) return 0;
    if (r == s.end) return r - p;
    return r - p >= 2 ? r - p - 1 : 0;
}

size_t match_gpt2(const Span &s, size_t p) {
    if (size_t n = match_contraction(s, p, false)) return n;
    const size_t q = (s.cp(p) == ' ' && p + 1 < s.end) ? p + 1 : p;  // the optional leading space
    if (s.L(q)) return s.run(q, [&](size_t i) { return s.L(i); }) - p;
    if (s.N(q)) return s.run(q, [&](size_t i) { return s.N(i); }) - p;
    if (s.other(q)) return s.run(q, [&](size_t i) { return s.other(i); }) - p;
    return match_ws_not_before_nonspace(s, p);
}

size_t match_llama3(const Span &s, size_t p, size_t max_digits) {
    if (size_t n = match_contraction(s, p, true)) return n;
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (s.L(p)) return s.run(p, [&](size_t i) { return s.L(i); }) - p;
    if (!s.newline(p) && !s.N(p) && p + 1 < s.end && s.L(p + 1))
        return s.run(p + 1, [&](size_t i) { return s.L(i); }) - p;
    // \p{N}{1,max}
    if (s.N(p)) {
        size_t q = p;
        while (q < s.end && q - p < max_digits && s.N(q)) q++;
        return q - p;
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    const size_t q = (s.cp(p) == ' ' && p + 1 < s.end && s.other(p + 1)) ? p + 1 : p;
    if (s.other(q)) {
        size_t r = s.run(q, [&](size_t i) { return s.other(i); });
        r = s.run(r, [&](size_t i) { return s.newline(i); });
        return r - p;
    }
    if (!s.ws(p)) return 0;  // not reached: every character is L, N, \s or other
    // \s*[\r\n]+ : up to and including the last newline of the whitespace run
    const size_t r = s.run(p, [&](size_t i) { return s.ws(i); });
    for (size_t k = r; k > p; k--)
        if (s.newline(k - 1)) return k - p;
    // \s+(?!\S) | \s+
    if (size_t n = match_ws_not_before_nonspace(s, p)) return n;
    return r - p;
}

bool is_default_punct(const Span &s, size_t i, bool backtick) {
    const uint32_t cp = s.cp(i);
    if (s.c[i].cat == UCat::P) return true;
    return cp == '$' || cp == '+' || cp == '<' || cp == '=' || cp == '>' || cp == '^' || cp == '~' ||
           cp == '|' || (backtick && cp == '`');
}

size_t match_stage(PreStage stage, const Span &s, size_t p) {
    switch (stage) {
        case PreStage::GPT2: return match_gpt2(s, p);
        case PreStage::LLAMA3: return match_llama3(s, p, 3);
        case PreStage::QWEN2: return match_llama3(s, p, 1);
        case PreStage::QWEN35: return match_llama3(s, p, 1);
        case PreStage::DIGIT: return s.N(p) ? 1 : 0;
        case PreStage::DIGITS: return s.run(p, [&](size_t i) { return s.N(i); }) - p;
        case PreStage::ASCII_DIGITS3: {
            size_t q = p;
            while (q < s.end && q - p < 3 && s.cp(q) >= '0' && s.cp(q) <= '9') q++;
            return q - p == 3 ? 3 : 0;
        }
        case PreStage::PUNCT_DEFAULT:
            return s.run(p, [&](size_t i) { return is_default_punct(s, i, false); }) - p;
        case PreStage::PUNCT_FALCON:
            return s.run(p, [&](size_t i) { return is_default_punct(s, i, true); }) - p;
    }
    return 0;
}

}  // namespace

void PreTokenizer::split(std::string_view text, std::vector<ByteRange> &out) const {
    if (text.empty()) return;
    std::vector<Char> chars;
    chars.reserve(text.size() + 1);
    for (size_t i = 0; i < text.size();) {
        size_t len;
        const uint32_t cp = utf8::decode(text, i, &len);
        chars.push_back({cp, uint32_t(i), unicode::category(cp), unicode::is_whitespace(cp)});
        i += len;
    }
    const size_t n = chars.size();
    chars.push_back({0, uint32_t(text.size()), UCat::C, false});  // sentinel: byte offset of the end

    // Pieces as character ranges, refined stage by stage.
    std::vector<std::pair<size_t, size_t>> pieces{{0, n}}, next;
    for (PreStage stage : stages_) {
        next.clear();
        for (const auto &[a, b] : pieces) {
            const Span s{chars.data(), a, b, stage == PreStage::QWEN35};
            size_t gap = a, p = a;
            while (p < b) {
                const size_t len = match_stage(stage, s, p);
                if (len == 0) { p++; continue; }
                if (gap < p) next.emplace_back(gap, p);
                next.emplace_back(p, p + len);
                p += len;
                gap = p;
            }
            if (gap < b) next.emplace_back(gap, b);
        }
        pieces.swap(next);
    }
    for (const auto &[a, b] : pieces) out.emplace_back(chars[a].byte, chars[b].byte);
}

}  // namespace tactic
