// The clean-up llama.cpp applies to a whole detokenized BPE text (clean_spaces).
#pragma once

#include <string>

namespace tactic {

void clean_spaces(std::string &s);

}  // namespace tactic
