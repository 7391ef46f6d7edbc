#include "byte_level.h"

#include <array>

#include "utf8.h"

namespace tactic::byte_level {

namespace {

struct Tables {
    std::array<std::string, 256> text;
    std::array<int16_t, 0x144> byte_of;  // code points below U+0144 are the only ones used

    Tables() {
        byte_of.fill(-1);
        uint32_t next = 0x100;
        for (int b = 0; b < 256; b++) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            const uint32_t cp = printable ? uint32_t(b) : next++;
            utf8::append(text[b], cp);
            byte_of[cp] = int16_t(b);
        }
    }
};

const Tables &tables() {
    static const Tables t;
    return t;
}

}  // namespace

const std::string &encode_byte(uint8_t b) { return tables().text[b]; }

void encode(std::string_view raw, std::string &out) {
    const Tables &t = tables();
    for (unsigned char b : raw) out += t.text[b];
}

int decode_codepoint(uint32_t cp) { return cp < 0x144 ? tables().byte_of[cp] : -1; }

std::string decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        size_t len;
        const uint32_t cp = utf8::decode(text, i, &len);
        const int b = decode_codepoint(cp);
        if (b >= 0) out += char(b);
        else out.append(text.substr(i, len));
        i += len;
    }
    return out;
}

}  // namespace tactic::byte_level
