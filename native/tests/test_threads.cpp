// Threads and handles through the C ABI, on a tiny gemma3 model written to a temp file:
// contexts on one model evaluated from several threads at once match a lone run; one
// context hammered by two threads either serializes or answers TACTIC_ERR_BUSY and ends
// exact; tokenization is safe from many threads; load/free cycles leave nothing behind
// (LeakSanitizer in the sanitized CI build). Run under -fsanitize=thread to check races.
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tactic.h"

namespace {

int g_failures = 0;
std::mutex g_fail_mutex;
#define EXPECT(cond)                                                                       \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            std::lock_guard<std::mutex> lk(g_fail_mutex);                                  \
            std::fprintf(stderr, "%s:%d: EXPECT failed: %s (%s)\n", __FILE__, __LINE__, #cond, \
                         tactic_last_error());                                             \
            g_failures++;                                                                  \
        }                                                                                  \
    } while (0)

// ---- a tiny GGUF model -------------------------------------------------------------
struct W {
    std::vector<uint8_t> b;
    template <class T> W &put(T v) {
        uint8_t bytes[sizeof v];
        std::memcpy(bytes, &v, sizeof v);
        for (uint8_t x : bytes) b.push_back(x);
        return *this;
    }
    W &str(const std::string &s) {
        put<uint64_t>(s.size());
        for (char c : s) b.push_back(uint8_t(c));
        return *this;
    }
};
enum { U32 = 4, I32 = 5, F32 = 6, STRING = 8, ARRAY = 9 };

struct TensorSpec {
    std::string name;
    int64_t ne0, ne1;
};

std::string write_tiny_model() {
    const int E = 32, F = 64, H = 2, HKV = 1, D = 16, L = 2;
    std::vector<std::string> vocab = {"<unk>", "<s>", "</s>"};
    for (char c = 'a'; c <= 'z'; c++) vocab.push_back(std::string("\xe2\x96\x81") + c);  // "▁a"
    for (char c = 'a'; c <= 'z'; c++) vocab.push_back(std::string(1, c));
    vocab.push_back("\xe2\x96\x81");
    const int V = int(vocab.size());

    std::vector<TensorSpec> ts = {{"token_embd.weight", E, V}, {"output_norm.weight", E, 1}};
    for (int il = 0; il < L; il++) {
        const std::string p = "blk." + std::to_string(il) + ".";
        for (const TensorSpec &t : std::vector<TensorSpec>{
                 {p + "attn_norm.weight", E, 1}, {p + "attn_q.weight", E, H * D}, {p + "attn_k.weight", E, HKV * D},
                 {p + "attn_v.weight", E, HKV * D}, {p + "attn_output.weight", H * D, E},
                 {p + "attn_q_norm.weight", D, 1}, {p + "attn_k_norm.weight", D, 1}, {p + "ffn_norm.weight", E, 1},
                 {p + "ffn_gate.weight", E, F}, {p + "ffn_up.weight", E, F}, {p + "ffn_down.weight", F, E},
                 {p + "post_attention_norm.weight", E, 1}, {p + "post_ffw_norm.weight", E, 1}})
            ts.push_back(t);
    }

    W w;
    w.b = {'G', 'G', 'U', 'F'};
    w.put<uint32_t>(3).put<uint64_t>(ts.size()).put<uint64_t>(18);
    auto u32 = [&](const char *k, uint32_t v) { w.str(k).put<uint32_t>(U32).put<uint32_t>(v); };
    auto f32 = [&](const char *k, float v) { w.str(k).put<uint32_t>(F32).put<float>(v); };
    w.str("general.architecture").put<uint32_t>(STRING).str("gemma3");
    u32("gemma3.context_length", 128);
    u32("gemma3.embedding_length", E);
    u32("gemma3.block_count", L);
    u32("gemma3.feed_forward_length", F);
    u32("gemma3.attention.head_count", H);
    u32("gemma3.attention.head_count_kv", HKV);
    u32("gemma3.attention.key_length", D);
    u32("gemma3.attention.value_length", D);
    u32("gemma3.attention.sliding_window", 8);
    f32("gemma3.attention.layer_norm_rms_epsilon", 1e-6f);
    f32("gemma3.rope.freq_base", 10000.f);
    w.str("tokenizer.ggml.model").put<uint32_t>(STRING).str("llama");
    w.str("tokenizer.ggml.tokens").put<uint32_t>(ARRAY).put<uint32_t>(STRING).put<uint64_t>(V);
    for (const auto &s : vocab) w.str(s);
    w.str("tokenizer.ggml.scores").put<uint32_t>(ARRAY).put<uint32_t>(F32).put<uint64_t>(V);
    for (int i = 0; i < V; i++) w.put<float>(-float(i));
    w.str("tokenizer.ggml.token_type").put<uint32_t>(ARRAY).put<uint32_t>(I32).put<uint64_t>(V);
    for (int i = 0; i < V; i++) w.put<int32_t>(i == 0 ? 2 : i < 3 ? 3 : 1);
    u32("tokenizer.ggml.bos_token_id", 1);
    u32("tokenizer.ggml.eos_token_id", 2);

    uint64_t off = 0;
    for (const auto &t : ts) {
        w.str(t.name);
        if (t.ne1 == 1) w.put<uint32_t>(1).put<uint64_t>(uint64_t(t.ne0));
        else w.put<uint32_t>(2).put<uint64_t>(uint64_t(t.ne0)).put<uint64_t>(uint64_t(t.ne1));
        w.put<uint32_t>(0).put<uint64_t>(off);
        off += (uint64_t(t.ne0 * t.ne1) * 4 + 31) / 32 * 32;
    }
    while (w.b.size() % 32) w.b.push_back(0);
    uint32_t rng = 12345;
    for (const auto &t : ts) {
        const bool norm = t.ne1 == 1;
        for (int64_t i = 0; i < t.ne0 * t.ne1; i++) {
            rng = rng * 1664525u + 1013904223u;
            const float r = float(rng >> 8) / float(1 << 24) - 0.5f;
            w.put<float>(norm ? 1.f + 0.1f * r : 0.4f * r);
        }
        while (w.b.size() % 32) w.b.push_back(0);
    }
    char path[] = "/tmp/tactic_test_threads_XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0 || write(fd, w.b.data(), w.b.size()) != ssize_t(w.b.size())) {
        std::perror("writing the tiny model");
        std::exit(2);
    }
    close(fd);
    return path;
}

// ---- helpers -------------------------------------------------------------------------
tactic_context *new_context(tactic_model *m, int n_ctx = 64, int n_threads = 1) {
    tactic_context_params p = tactic_context_default_params();
    p.n_ctx = n_ctx;
    p.n_threads = n_threads;
    p.attention = TACTIC_ATTN_FULL;
    tactic_context *c = nullptr;
    EXPECT(tactic_context_new(m, &p, &c) == TACTIC_OK);
    return c;
}

int n_vocab(tactic_model *m) {
    tactic_model_info info;
    EXPECT(tactic_model_get_info(m, &info) == TACTIC_OK);
    return info.n_vocab;
}

std::vector<float> run(tactic_model *m, const std::vector<int32_t> &toks, int n_threads = 1) {
    tactic_context *c = new_context(m, 64, n_threads);
    if (!c) return {};
    EXPECT(tactic_eval(c, toks.data(), int32_t(toks.size()), 0) == TACTIC_OK);
    const float *l = tactic_get_logits(c, -1);
    std::vector<float> out(l, l + n_vocab(m));
    tactic_context_free(c);
    return out;
}

std::vector<int32_t> tokenize(tactic_model *m, const std::string &s) {
    std::vector<int32_t> out(s.size() * 2 + 8);
    int32_t n = 0;
    EXPECT(tactic_tokenize(m, s.data(), s.size(), 1, 0, out.data(), int32_t(out.size()), &n) == TACTIC_OK);
    out.resize(size_t(n));
    return out;
}

// ---- tests ---------------------------------------------------------------------------
void test_contexts_in_threads(tactic_model *m) {
    const std::vector<int32_t> a = {1, 5, 9, 12, 30}, b = {1, 40, 41, 7};
    const std::vector<float> ra = run(m, a), rb = run(m, b);
    const std::string text = "hello world abc xyz";
    const std::vector<int32_t> rt = tokenize(m, text);
    EXPECT(rt.size() > 3);
    std::vector<std::thread> th;
    for (int t = 0; t < 4; t++)
        th.emplace_back([&, t] {
            for (int i = 0; i < 10; i++) {
                // Contexts with their own thread pools too (n_threads 3): same logits.
                EXPECT(run(m, t % 2 ? a : b, t < 2 ? 1 : 3) == (t % 2 ? ra : rb));
                EXPECT(tokenize(m, text) == rt);
            }
        });
    for (auto &x : th) x.join();
}

void test_one_context_two_threads(tactic_model *m) {
    const int n = 8, iters = 200;
    tactic_context *c = new_context(m, 2 * iters * n);
    std::atomic<int> ok{0}, busy{0}, ready{0};
    std::vector<std::thread> th;
    for (int t = 0; t < 2; t++)
        th.emplace_back([&, t] {
            const std::vector<int32_t> toks(n, 10 + t);
            ready++;
            while (ready.load() < 2) std::this_thread::yield();  // start together
            for (int i = 0; i < iters; i++) {
                const tactic_status s = tactic_eval(c, toks.data(), n, 0);
                if (s == TACTIC_OK) {
                    ok++;
                } else {
                    EXPECT(s == TACTIC_ERR_BUSY);
                    busy++;
                }
            }
        });
    for (auto &x : th) x.join();
    EXPECT(tactic_context_n_past(c) == ok.load() * n);
    std::printf("  one context, two threads: %d evals ran, %d got BUSY\n", ok.load(), busy.load());
    tactic_context_free(c);
}

void test_load_free_cycles(const std::string &path) {
    for (int i = 0; i < 20; i++) {
        tactic_model *m = nullptr;
        EXPECT(tactic_model_load(path.c_str(), nullptr, &m) == TACTIC_OK);
        tactic_context *c = new_context(m);
        const int32_t t = 1;
        EXPECT(tactic_eval(c, &t, 1, 0) == TACTIC_OK);
        tactic_context_free(c);
        tactic_model_free(m);
    }
}

}  // namespace

int main() {
    const std::string path = write_tiny_model();
    tactic_model *m = nullptr;
    if (tactic_model_load(path.c_str(), nullptr, &m) != TACTIC_OK) {
        std::fprintf(stderr, "cannot load the tiny model: %s\n", tactic_last_error());
        unlink(path.c_str());
        return 1;
    }
    test_contexts_in_threads(m);
    std::printf("%s contexts_in_threads\n", g_failures ? "FAIL" : "ok  ");
    const int f1 = g_failures;
    test_one_context_two_threads(m);
    std::printf("%s one_context_two_threads\n", g_failures > f1 ? "FAIL" : "ok  ");
    tactic_model_free(m);
    const int f2 = g_failures;
    test_load_free_cycles(path);
    std::printf("%s load_free_cycles\n", g_failures > f2 ? "FAIL" : "ok  ");
    unlink(path.c_str());
    return g_failures ? 1 : 0;
}
