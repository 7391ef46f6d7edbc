// UTF-8 decoding that never fails: an invalid or truncated sequence is read as a
// single byte standing for U+FFFD, so every byte of the input belongs to exactly
// one "character" and no byte is lost or read past the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tactic::utf8 {

constexpr uint32_t kReplacement = 0xFFFD;

// Decodes the character at s[i] (i < s.size()); *len receives its byte length (>= 1).
uint32_t decode(std::string_view s, size_t i, size_t *len);

// Byte length of the character starting at s[i], by the same rules as decode().
inline size_t char_len(std::string_view s, size_t i) {
    size_t len;
    decode(s, i, &len);
    return len;
}

void append(std::string &out, uint32_t cp);

// Length a lead byte announces (1 for ASCII and for bytes that cannot lead). The
// merge-based tokenizers cut their initial symbols this way, as llama.cpp does.
inline size_t lead_len(uint8_t c) {
    if (c < 0xC0) return 1;
    if (c < 0xE0) return 2;
    if (c < 0xF0) return 3;
    return c < 0xF8 ? 4 : 1;
}

}  // namespace tactic::utf8
