#include "bpe_presets.h"

#include <initializer_list>

namespace tactic {

std::optional<BpePreset> bpe_preset(const std::string &pre) {
    auto is = [&](std::initializer_list<const char *> names) {
        for (const char *n : names)
            if (pre == n) return true;
        return false;
    };
    BpePreset c;
    if (pre.empty() || pre == "default") {
        c.stages = {PreStage::PUNCT_DEFAULT, PreStage::GPT2, PreStage::DIGITS, PreStage::ASCII_DIGITS3};
    } else if (is({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"})) {
        c.stages = {PreStage::LLAMA3};
        c.ignore_merges = true;
        c.add_bos = true;
    } else if (is({"dbrx", "smaug-bpe"})) {
        c.stages = {PreStage::LLAMA3};
    } else if (is({"chatglm-bpe", "glm4"})) {
        c.stages = {PreStage::LLAMA3};
        c.no_bos = true;
    } else if (is({"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2"})) {
        c.stages = {PreStage::QWEN2};
        c.clean_spaces = false;
    } else if (pre == "qwen35") {
        c.stages = {PreStage::QWEN35};
        c.clean_spaces = false;
    } else if (pre == "stablelm2") {
        c.stages = {PreStage::QWEN2};
    } else if (is({"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
                   "mellum", "modern-bert", "mpt", "olmo", "jais", "trillion"})) {
        c.stages = {PreStage::GPT2};
    } else if (is({"starcoder", "refact", "smollm", "codeshell", "exaone", "minerva-7b"})) {
        c.stages = {PreStage::DIGIT, PreStage::GPT2};
    } else if (pre == "command-r") {
        c.stages = {PreStage::DIGIT, PreStage::GPT2};
        c.clean_spaces = false;
    } else if (pre == "falcon") {
        c.stages = {PreStage::PUNCT_FALCON, PreStage::GPT2, PreStage::ASCII_DIGITS3};
    } else {
        return std::nullopt;
    }
    return c;
}

}  // namespace tactic
