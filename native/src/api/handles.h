// What the C ABI's opaque handles hold.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "../gguf.h"
#include "../model.h"
#include "../tokenizer.h"

struct tactic_model {
    // The caller's handle plus one per live context: the weights stay mapped until the
    // last context that reads them is freed, whatever order the caller frees them in.
    std::atomic<int> refs{1};
    std::unique_ptr<tactic::GGUFFile> file;
    std::unique_ptr<tactic::Model> model;
    std::unique_ptr<tactic::Tokenizer> tokenizer;  // null if the file has no vocab
    std::mutex meta_mutex;
    std::map<std::string, std::string> meta_cache;  // rendered metadata values

    const tactic::Model &weights() const {
        TACTIC_CHECK(model, TACTIC_ERR_INVALID_ARGUMENT, "this model was loaded with vocab_only");
        return *model;
    }
    const tactic::Tokenizer &tok() const {
        TACTIC_CHECK(tokenizer, TACTIC_ERR_UNSUPPORTED, "this model file has no tokenizer");
        return *tokenizer;
    }
};

namespace tactic {
class Context;
}

void tactic_model_release(tactic_model *model);

struct tactic_context {
    tactic_model *model = nullptr;
    std::unique_ptr<tactic::Context> ctx;
    std::mutex busy;  // one call at a time: a second thread gets TACTIC_ERR_BUSY
};
