// Hyper-parameters of the supported architectures, read from GGUF metadata.
#include "arch.h"

#include <cmath>

#include "common.h"
#include "gguf.h"

namespace tactic {

namespace {

// What distinguishes one architecture's forward pass from another's.
struct ArchTraits {
    const char *name;
    RopeType rope;
    Activation act;
    bool embed_scale, qk_norm, qkv_bias, post_norms;
};

const ArchTraits kArchs[] = {
    {"llama", RopeType::Norm, Activation::Silu, false, false, false, false},
    {"qwen2", RopeType::Neox, Activation::Silu, false, false, true, false},
    {"qwen3", RopeType::Neox, Activation::Silu, false, true, false, false},
    {"gemma3", RopeType::Neox, Activation::GeluTanh, true, true, false, true},
};

int64_t require_int(const GGUFFile &f, const std::string &key) {
    const GGUFValue *v = f.find(key);
    TACTIC_CHECK(v, TACTIC_ERR_FORMAT, "missing metadata '" + key + "'");
    TACTIC_CHECK(v->is_int(), TACTIC_ERR_FORMAT, "metadata '" + key + "' should be an integer");
    return v->as_int();
}

int checked_dim(int64_t v, const std::string &what, int64_t lo, int64_t hi) {
    TACTIC_CHECK(v >= lo && v <= hi, TACTIC_ERR_FORMAT,
                 what + " = " + std::to_string(v) + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return int(v);
}

}  // namespace

HParams HParams::from_gguf(const GGUFFile &f) {
    HParams h;
    h.arch = f.get_str("general.architecture", "");
    TACTIC_CHECK(!h.arch.empty(), TACTIC_ERR_FORMAT, "missing metadata 'general.architecture'");
    const ArchTraits *traits = nullptr;
    for (const auto &a : kArchs)
        if (h.arch == a.name) traits = &a;
    if (!traits) {
        std::string names;
        for (const auto &a : kArchs) names += std::string(names.empty() ? "" : ", ") + a.name;
        fail(TACTIC_ERR_UNSUPPORTED, "unsupported architecture '" + h.arch + "' (supported: " + names + ")");
    }
    const std::string a = h.arch + ".";
    h.n_embd = checked_dim(require_int(f, a + "embedding_length"), "embedding_length", 1, 1 << 16);
    h.n_layer = checked_dim(require_int(f, a + "block_count"), "block_count", 1, 1024);
    h.n_ff = checked_dim(require_int(f, a + "feed_forward_length"), "feed_forward_length", 1, 1 << 20);
    h.n_head = checked_dim(require_int(f, a + "attention.head_count"), "head_count", 1, 1024);
    h.n_head_kv = checked_dim(f.get_int(a + "attention.head_count_kv", h.n_head), "head_count_kv", 1, h.n_head);
    TACTIC_CHECK(h.n_head % h.n_head_kv == 0, TACTIC_ERR_FORMAT, "head_count is not a multiple of head_count_kv");
    h.head_dim = checked_dim(f.get_int(a + "attention.key_length", h.n_embd / h.n_head), "key_length", 1, 1024);
    const int vdim = checked_dim(f.get_int(a + "attention.value_length", h.head_dim), "value_length", 1, 1024);
    TACTIC_CHECK(vdim == h.head_dim, TACTIC_ERR_UNSUPPORTED, "key_length != value_length is not supported");
    h.n_ctx_train = checked_dim(f.get_int(a + "context_length", 2048), "context_length", 1, 1 << 24);
    h.rms_eps = float(f.get_float(a + "attention.layer_norm_rms_epsilon", 1e-5));
    TACTIC_CHECK(h.rms_eps > 0 && h.rms_eps < 1, TACTIC_ERR_FORMAT, "layer_norm_rms_epsilon out of range");

    h.rope_type = traits->rope;
    h.act = traits->act;
    h.embed_scale = traits->embed_scale;
    h.qk_norm = traits->qk_norm;
    h.qkv_bias = traits->qkv_bias;
    h.post_norms = traits->post_norms;

    h.n_rot = checked_dim(f.get_int(a + "rope.dimension_count", h.head_dim), "rope.dimension_count", 2, h.head_dim);
    TACTIC_CHECK(h.n_rot % 2 == 0, TACTIC_ERR_FORMAT, "rope.dimension_count must be even");
    h.rope_base = float(f.get_float(a + "rope.freq_base", 10000.0));
    TACTIC_CHECK(h.rope_base > 0, TACTIC_ERR_FORMAT, "rope.freq_base must be positive");
    const std::string scaling = f.get_str(a + "rope.scaling.type", "linear");
    double factor = f.get_float(a + "rope.scaling.factor", f.get_float(a + "rope.scale_linear", 0.0));
    if (scaling == "none" || factor <= 0) factor = 1.0;
    TACTIC_CHECK(scaling == "none" || scaling == "linear" || scaling == "yarn", TACTIC_ERR_UNSUPPORTED,
                 "unsupported rope.scaling.type '" + scaling + "'");
    h.rope_freq_scale = float(1.0 / factor);
    h.rope_yarn = scaling == "yarn" && factor != 1.0;
    h.yarn_attn_factor = float(f.get_float(a + "rope.scaling.attn_factor", 1.0));
    h.yarn_orig_ctx = int(f.get_int(a + "rope.scaling.original_context_length", h.n_ctx_train));
    h.rope_base_swa = float(f.get_float(a + "rope.freq_base_swa", 10000.0));

    h.attn_scale = float(f.get_float(a + "attention.scale", 0.0));
    h.final_logit_softcap = float(f.get_float(a + "final_logit_softcapping", 0.0));
    h.sliding_window = int(f.get_int(a + "attention.sliding_window", 0));
    TACTIC_CHECK(h.sliding_window >= 0, TACTIC_ERR_FORMAT, "attention.sliding_window is negative");
    h.layer_is_swa.assign(size_t(h.n_layer), 0);
    if (h.arch == "gemma3") {
        // Gemma 3: every 6th layer is global; the rest see a sliding window, with
        // their own RoPE base and no RoPE scaling. The 27B scales q by 1/sqrt(n_embd/n_head).
        if (h.sliding_window > 0) {
            const int period = int(f.get_int(a + "attention.sliding_window_pattern", 6));
            TACTIC_CHECK(period >= 1, TACTIC_ERR_FORMAT, "sliding_window_pattern must be >= 1");
            for (int il = 0; il < h.n_layer; il++) h.layer_is_swa[size_t(il)] = (il % period) < period - 1;
        }
        if (h.attn_scale == 0.f)
            h.attn_scale = h.n_layer == 62 ? 1.f / std::sqrt(float(h.n_embd / h.n_head)) : 1.f / std::sqrt(float(h.head_dim));
    } else if (h.sliding_window > 0) {
        // Other architectures here do not apply a sliding window (llama.cpp ignores
        // Mistral's); keep them plainly causal.
        h.sliding_window = 0;
    }
    if (h.attn_scale == 0.f) h.attn_scale = 1.f / std::sqrt(float(h.head_dim));
    return h;
}

}  // namespace tactic
