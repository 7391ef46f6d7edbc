// libFuzzer harness: any byte string given to the GGUF reader, and then to the model
// binder and the tokenizer loader, must either parse or throw tactic::Error. Any other
// exception, crash, hang or sanitizer report is a bug.
//
//   CC=clang CXX=clang++ cmake -B build-fuzz -G Ninja -DTACTIC_FUZZ=ON -DTACTIC_CUDA=OFF
//   cmake --build build-fuzz --target fuzz_gguf && scripts/fuzz_gguf.sh
#include <cstddef>
#include <cstdint>
#include <string>

#include "common.h"
#include "forward.h"
#include "gguf.h"
#include "model.h"
#include "tokenizer.h"

namespace {

volatile uint64_t g_sink;  // keeps the reads below from being optimised away

// Touch the first and last byte of a span: ASan reports it if the bounds are wrong.
void touch(const uint8_t *p, uint64_t n) {
    if (n == 0) return;
    g_sink = g_sink + p[0] + p[n - 1];
}

void exercise_tactic(const tactic::Model &m, size_t size);

void exercise_file(const tactic::GGUFFile &f) {
    for (const auto &kv : f.kv()) g_sink = g_sink + kv.second.to_string().size();
    for (const auto &t : f.tensors()) touch(t.data, t.nbytes);
    // Typed getters on the keys the binder reads, whatever their type.
    try { g_sink = g_sink + uint64_t(f.get_int("general.alignment", 0)); } catch (const tactic::Error &) {}
    try { g_sink = g_sink + f.get_str("general.architecture", "").size(); } catch (const tactic::Error &) {}
}

void exercise_model(const tactic::GGUFFile &f, size_t size) {
    std::unique_ptr<tactic::Model> m = tactic::Model::from_gguf(f);
    auto check = [](const tactic::Tensor &t) {
        if (!t) return;
        touch(t.row(0), t.row_bytes);
        touch(t.row(t.ne1 - 1), t.row_bytes);
    };
    check(m->tok_embd);
    check(m->output);
    check(m->output_norm);
    for (const auto &L : m->layers) {
        for (const tactic::Tensor *t : {&L.attn_norm, &L.wq, &L.wk, &L.wv, &L.wo, &L.q_norm, &L.k_norm,
                                        &L.ffn_norm, &L.ffn_gate, &L.ffn_up, &L.ffn_down})
            check(*t);
    }
    // A few tokens through the forward pass: whatever hyper-parameters the file gave
    // (windows, RoPE dims, head counts) must not reach undefined behaviour.
    tactic_context_params p = tactic_context_default_params();
    p.n_ctx = 8;
    p.n_threads = 1;
    p.attention = TACTIC_ATTN_FULL;
    tactic::Context ctx(*m, p);
    const int32_t nv = m->hp.n_vocab;
    const int32_t toks[3] = {0, nv - 1, nv / 2};
    ctx.eval(toks, 3, true);
    ctx.eval(toks, 1, false);
    exercise_tactic(*m, size);
    for (int r = 0; r < ctx.n_logit_rows(); r++) g_sink = g_sink + uint64_t(ctx.logits(r)[nv - 1] != 0.f);
}

// Tactic sparse attention on the same model: clustering and selection over a short
// cache, with the options picked from the input so both variants get exercised.
void exercise_tactic(const tactic::Model &m, size_t size) {
    tactic_context_params p = tactic_context_default_params();
    p.n_ctx = 16;
    p.n_threads = 1;
    p.attention = TACTIC_ATTN_TACTIC;
    p.cluster_size = 2;
    p.n_sink = 1;
    p.n_recent = 2;
    p.tactic_debug = int(size & 1);
    p.tactic_incremental = int((size >> 1) & 1);
    p.tactic_selector = int((size >> 2) % 5);  // TACTIC_SELECT_*: Tactic and the baselines
    tactic::Context ctx(m, p);
    const int32_t nv = m.hp.n_vocab;
    const int32_t toks[6] = {0, nv - 1, nv / 2, 1 % nv, nv / 3, 2 % nv};
    ctx.eval(toks, 6, false);
    for (int i = 0; i < 4; i++) ctx.eval(toks + i, 1, false);
    ctx.truncate(3);
    ctx.eval(toks, 2, false);
    g_sink = g_sink + uint64_t(ctx.logits(-1)[0] != 0.f);
}

void exercise_tokenizer(const tactic::GGUFFile &f) {
    std::unique_ptr<tactic::Tokenizer> tok = tactic::Tokenizer::from_gguf(f);
    if (!tok) return;
    static const char kText[] = "Hello, world! <start_of_turn>user\n  12345 \xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80 \xff\xfe end";
    std::vector<int32_t> ids = tok->tokenize(std::string_view(kText, sizeof kText - 1), true, true);
    g_sink = g_sink + tok->detokenize(ids.data(), ids.size(), true).size();
    const int32_t n = tok->n_vocab();
    for (int32_t id : {0, 1, n / 2, n - 1}) {
        if (id < 0 || id >= n) continue;
        g_sink = g_sink + tok->token_to_piece(id, true).size() + uint64_t(tok->is_eog(id));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::unique_ptr<tactic::GGUFFile> f;
    try {
        f = tactic::GGUFFile::from_memory(data, size);
    } catch (const tactic::Error &) {
        return 0;
    }
    exercise_file(*f);
    try {
        exercise_model(*f, size);
    } catch (const tactic::Error &) {
    }
    try {
        exercise_tokenizer(*f);
    } catch (const tactic::Error &) {
    }
    return 0;
}
