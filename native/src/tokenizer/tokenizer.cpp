// TEMPORARY stub: replaced by the tokenizer work.
#include "../tokenizer.h"

#include "../common.h"
#include "../gguf.h"

namespace tactic {
std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GGUFFile &) { return nullptr; }
}  // namespace tactic
