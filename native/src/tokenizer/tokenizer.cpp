// The Tokenizer the engine uses: a GGUF vocabulary with SentencePiece-style or
// byte-level BPE tokenization chosen by tokenizer.ggml.model, special-token
// splitting, pieces and detokenizing (FORMATS §4).
#include "../tokenizer.h"

#include <memory>

#include "../common.h"
#include "../gguf.h"
#include "bpe.h"
#include "bpe_presets.h"
#include "byte_level.h"
#include "clean_spaces.h"
#include "pretokenize.h"
#include "special_split.h"
#include "spm.h"
#include "vocab.h"

namespace tactic {

namespace {

const char kSpaceEscape[] = "\xe2\x96\x81";  // U+2581, SentencePiece's visible space

class GGUFTokenizer final : public Tokenizer {
public:
    explicit GGUFTokenizer(const GGUFFile &file) {
        const std::string model = file.get_str("tokenizer.ggml.model", "");
        const std::string pre = file.get_str("tokenizer.ggml.pre", "");
        if (model == "llama") {
            v_.kind = VocabKind::SPM;
            v_.load(file, 1, 2, 0, true);
            v_.add_space_prefix = file.get_bool("tokenizer.ggml.add_space_prefix", true);
            clean_spaces_ = false;
            spm_ = std::make_unique<SpmTokenizer>(v_);
        } else if (model == "gpt2") {
            const std::optional<BpePreset> c = bpe_preset(pre);
            TACTIC_CHECK(c, TACTIC_ERR_UNSUPPORTED, "unsupported pre-tokenizer tokenizer.ggml.pre = '" + pre + "'");
            v_.kind = VocabKind::BPE;
            v_.load(file, c->no_bos ? -1 : 11, 11, -1, c->add_bos);
            v_.add_space_prefix = file.get_bool("tokenizer.ggml.add_space_prefix", false);
            clean_spaces_ = c->clean_spaces;
            pre_ = PreTokenizer(c->stages);
            bpe_ = std::make_unique<BpeTokenizer>(v_, file, c->ignore_merges);
        } else {
            fail(TACTIC_ERR_UNSUPPORTED, "unsupported tokenizer model tokenizer.ggml.model = '" + model + "'");
        }
        v_.model = model;
        v_.pre = pre;
    }

    std::vector<int32_t> tokenize(std::string_view text, bool add_special, bool parse_special) const override {
        std::vector<int32_t> out;
        if (add_special && v_.add_bos) out.push_back(v_.bos);
        const std::vector<Fragment> frags = split_special(text, v_, parse_special);
        if (spm_) {
            tokenize_spm(text, frags, out);
        } else {
            tokenize_bpe(text, frags, out);
        }
        if (add_special && v_.add_eos) out.push_back(v_.eos);
        return out;
    }

    std::string token_to_piece(int32_t id, bool special) const override {
        TACTIC_CHECK(v_.valid(id), TACTIC_ERR_INVALID_ARGUMENT,
                     "token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(v_.size()));
        const std::string &text = v_.text[id];
        switch (v_.type[id]) {
            case TokenType::CONTROL:
            case TokenType::UNKNOWN:
                return special ? text : std::string();
            case TokenType::USER_DEFINED:
                return text;
            case TokenType::NORMAL:
                return spm_ ? unescape_spaces(text) : byte_level::decode(text);
            case TokenType::BYTE:
                return byte_piece(text);
            default:  // unused and undefined tokens render as nothing
                return std::string();
        }
    }

    std::string detokenize(const int32_t *ids, size_t n, bool special) const override {
        std::string out;
        for (size_t i = 0; i < n; i++) {
            std::string piece = token_to_piece(ids[i], special);
            // With add_space_prefix, the space tokenizing added in front is dropped again.
            if (i == 0 && v_.add_space_prefix && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
            out += piece;
        }
        if (clean_spaces_) clean_spaces(out);
        return out;
    }

    int32_t n_vocab() const override { return v_.size(); }
    int32_t bos() const override { return v_.bos; }
    int32_t eos() const override { return v_.eos; }
    bool is_eog(int32_t id) const override { return v_.is_eog(id); }
    bool add_bos() const override { return v_.add_bos; }
    bool add_eos() const override { return v_.add_eos; }

private:
    void tokenize_spm(std::string_view text, const std::vector<Fragment> &frags, std::vector<int32_t> &out) const {
        bool prev_special = true;  // the first raw fragment also gets the space prefix
        std::string buf;
        for (const Fragment &f : frags) {
            if (f.token >= 0) {
                out.push_back(f.token);
                prev_special = true;
                continue;
            }
            buf.clear();
            if (v_.add_space_prefix && prev_special) buf += kSpaceEscape;
            for (char c : text.substr(f.offset, f.length)) {
                if (c == ' ') buf += kSpaceEscape;
                else buf += c;
            }
            spm_->tokenize(buf, out);
            prev_special = false;
        }
    }

    void tokenize_bpe(std::string_view text, const std::vector<Fragment> &frags, std::vector<int32_t> &out) const {
        std::vector<ByteRange> pieces;
        std::string word;
        for (const Fragment &f : frags) {
            if (f.token >= 0) {
                out.push_back(f.token);
                continue;
            }
            const std::string_view raw = text.substr(f.offset, f.length);
            pieces.clear();
            pre_.split(raw, pieces);
            for (const ByteRange &p : pieces) {
                word.clear();
                byte_level::encode(raw.substr(p.first, p.second - p.first), word);
                bpe_->tokenize_word(word, out);
            }
        }
    }

    static std::string unescape_spaces(const std::string &text) {
        std::string out;
        out.reserve(text.size());
        for (size_t i = 0; i < text.size(); i++) {
            if (text.compare(i, 3, kSpaceEscape) == 0) {
                out += ' ';
                i += 2;
            } else {
                out += text[i];
            }
        }
        return out;
    }

    std::string byte_piece(const std::string &text) const {
        // SPM byte tokens are "<0xHH>"; a byte-level BPE vocabulary spells its bytes encoded.
        if (text.size() == 6 && text.compare(0, 3, "<0x") == 0 && text[5] == '>') {
            auto hex = [](char c) {
                if (c >= '0' && c <= '9') return c - '0';
                if (c >= 'A' && c <= 'F') return c - 'A' + 10;
                if (c >= 'a' && c <= 'f') return c - 'a' + 10;
                return -1;
            };
            const int hi = hex(text[3]), lo = hex(text[4]);
            if (hi >= 0 && lo >= 0) return std::string(1, char(hi * 16 + lo));
        }
        return spm_ ? text : byte_level::decode(text);
    }

    Vocab v_;
    bool clean_spaces_ = false;
    PreTokenizer pre_;
    std::unique_ptr<SpmTokenizer> spm_;
    std::unique_ptr<BpeTokenizer> bpe_;
};

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GGUFFile &file) {
    return std::make_unique<GGUFTokenizer>(file);
}

}  // namespace tactic
