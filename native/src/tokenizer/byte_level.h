// GPT-2 byte-level encoding (FORMATS §4.4): each byte becomes one printable code
// point, so any byte string is a valid token text. Bytes 0x21-0x7E, 0xA1-0xAC and
// 0xAE-0xFF map to themselves; the other 68, in order, to U+0100, U+0101, ...
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tactic::byte_level {

// The UTF-8 text that stands for byte b.
const std::string &encode_byte(uint8_t b);
// Encodes every byte of `raw`, appending to out.
void encode(std::string_view raw, std::string &out);
// The byte code point cp stands for, or -1 if it stands for none.
int decode_codepoint(uint32_t cp);
// Inverse of encode; characters that stand for no byte are copied as they are.
std::string decode(std::string_view text);

}  // namespace tactic::byte_level
