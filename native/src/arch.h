// Per-architecture facts read from GGUF metadata. Architectures differ by these data
// (which norms exist, RoPE style, activation, sliding windows), never by a copy of the
// forward pass.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tactic {

class GGUFFile;

enum class RopeType { Norm, Neox };
enum class Activation { Silu, GeluTanh };

struct HParams {
    std::string arch;          // general.architecture
    int n_vocab = 0;
    int n_ctx_train = 0;
    int n_embd = 0;
    int n_layer = 0;
    int n_head = 0;
    int n_head_kv = 0;
    int head_dim = 0;          // key_length (== value_length)
    int n_ff = 0;
    float rms_eps = 1e-5f;

    // RoPE
    RopeType rope_type = RopeType::Norm;
    int n_rot = 0;
    float rope_base = 10000.f;       // global layers
    float rope_base_swa = 10000.f;   // sliding-window layers
    float rope_freq_scale = 1.f;     // 1/factor for linear/yarn scaling (global layers)
    bool rope_yarn = false;
    float yarn_attn_factor = 1.f;
    int yarn_orig_ctx = 0;

    // Attention
    float attn_scale = 0.f;          // multiply q by this (0 = 1/sqrt(head_dim))
    int sliding_window = 0;          // 0: none
    std::vector<uint8_t> layer_is_swa;  // per layer

    // Which optional pieces this architecture has.
    Activation act = Activation::Silu;
    bool embed_scale = false;        // x = E[tok] * sqrt(n_embd)
    bool qk_norm = false;            // per-head RMSNorm of q and k before RoPE
    bool qkv_bias = false;
    bool post_norms = false;         // gemma: norms after attention and after the FFN
    float final_logit_softcap = 0.f; // 0: none

    // Reads and validates the hyper-parameters; Error(UNSUPPORTED) names an unknown
    // architecture, Error(FORMAT) a missing or out-of-range key.
    static HParams from_gguf(const GGUFFile &file);
    bool is_global(int layer) const { return layer_is_swa.empty() || !layer_is_swa[size_t(layer)]; }
};

}  // namespace tactic
