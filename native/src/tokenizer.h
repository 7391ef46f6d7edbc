// Tokenizers driven by the GGUF vocab: SentencePiece-style ("llama") and byte-level
// BPE ("gpt2") with the pre-tokenizer named by tokenizer.ggml.pre. See FORMATS.md §4.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tactic {

class GGUFFile;

class Tokenizer {
public:
    virtual ~Tokenizer() = default;
    // Builds the tokenizer the file's tokenizer.ggml.* keys describe. Throws
    // Error(FORMAT) for inconsistent vocab data, Error(UNSUPPORTED) for unknown models
    // or pre-tokenizers.
    static std::unique_ptr<Tokenizer> from_gguf(const GGUFFile &file);

    // add_special: BOS/EOS as the file says. parse_special: split out control-token
    // texts (user-defined tokens are always split out).
    virtual std::vector<int32_t> tokenize(std::string_view text, bool add_special,
                                          bool parse_special) const = 0;
    // The raw bytes of one token (may be part of a UTF-8 character).
    virtual std::string token_to_piece(int32_t id, bool special) const = 0;
    // A whole sequence, with clean-up rules applied.
    virtual std::string detokenize(const int32_t *ids, size_t n, bool special) const = 0;

    virtual int32_t n_vocab() const = 0;
    virtual int32_t bos() const = 0;   // -1 if none
    virtual int32_t eos() const = 0;   // -1 if none
    virtual bool is_eog(int32_t id) const = 0;
    virtual bool add_bos() const = 0;
    virtual bool add_eos() const = 0;
};

}  // namespace tactic
