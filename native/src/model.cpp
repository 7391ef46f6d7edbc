// Binds the tensors of a GGUF file to the architecture's layer structure, checking
// that each one exists (when required), has the expected shape, and a supported type.
#include "model.h"

#include "common.h"
#include "gguf.h"
#include "quant.h"

namespace tactic {

namespace {

struct Binder {
    const GGUFFile &f;
    Model &m;

    Tensor get(const std::string &name, int64_t ne0, int64_t ne1, bool required) {
        const GGUFTensor *t = f.tensor(name);
        if (!t) {
            TACTIC_CHECK(!required, TACTIC_ERR_FORMAT, "missing tensor '" + name + "'");
            return {};
        }
        const int64_t want1 = ne1 < 0 ? t->ne[1] : ne1;
        TACTIC_CHECK(t->ne[0] == ne0 && t->ne[1] == want1 && t->ne[2] == 1 && t->ne[3] == 1, TACTIC_ERR_FORMAT,
                     "tensor '" + name + "' has shape [" + std::to_string(t->ne[0]) + ", " + std::to_string(t->ne[1]) +
                         "], expected [" + std::to_string(ne0) + ", " + std::to_string(want1) + "]");
        const TypeTraits &tt = type_traits(t->type);
        TACTIC_CHECK(tt.supported, TACTIC_ERR_UNSUPPORTED,
                     "tensor '" + name + "' has type " + tt.name + ", which this runtime does not support yet");
        Tensor out;
        out.data = t->data;
        out.type = t->type;
        out.ne0 = t->ne[0];
        out.ne1 = t->ne[1];
        out.row_bytes = row_size(t->type, t->ne[0]);
        out.name = t->name.c_str();
        m.n_params += t->n_elements();
        m.n_bytes += int64_t(t->nbytes);
        return out;
    }
    Tensor vec(const std::string &name, int64_t n, bool required) {
        Tensor t = get(name, n, 1, required);
        TACTIC_CHECK(!t || t.type == GGML_F32, TACTIC_ERR_UNSUPPORTED, "tensor '" + name + "' should be F32");
        return t;
    }
};

}  // namespace

std::unique_ptr<Model> Model::from_gguf(const GGUFFile &f) {
    auto m = std::make_unique<Model>();
    m->hp = HParams::from_gguf(f);
    HParams &hp = m->hp;
    Binder b{f, *m};

    const GGUFTensor *embd = f.tensor("token_embd.weight");
    TACTIC_CHECK(embd, TACTIC_ERR_FORMAT, "missing tensor 'token_embd.weight'");
    hp.n_vocab = int(embd->ne[1]);
    TACTIC_CHECK(hp.n_vocab > 0 && embd->ne[1] < (int64_t(1) << 31), TACTIC_ERR_FORMAT, "token_embd has a bad vocabulary size");
    const int64_t E = hp.n_embd, D = hp.head_dim, Hq = int64_t(hp.n_head) * D, Hkv = int64_t(hp.n_head_kv) * D;

    m->tok_embd = b.get("token_embd.weight", E, hp.n_vocab, true);
    m->output_norm = b.vec("output_norm.weight", E, true);
    m->output = b.get("output.weight", E, hp.n_vocab, false);
    if (!m->output) m->output = m->tok_embd;  // tied embeddings
    m->rope_freqs = b.vec("rope_freqs.weight", hp.n_rot / 2, false);

    m->layers.resize(size_t(hp.n_layer));
    for (int il = 0; il < hp.n_layer; il++) {
        LayerWeights &L = m->layers[size_t(il)];
        const std::string p = "blk." + std::to_string(il) + ".";
        L.attn_norm = b.vec(p + "attn_norm.weight", E, true);
        L.wq = b.get(p + "attn_q.weight", E, Hq, true);
        L.wk = b.get(p + "attn_k.weight", E, Hkv, true);
        L.wv = b.get(p + "attn_v.weight", E, Hkv, true);
        L.wo = b.get(p + "attn_output.weight", Hq, E, true);
        L.bq = b.vec(p + "attn_q.bias", Hq, hp.qkv_bias);
        L.bk = b.vec(p + "attn_k.bias", Hkv, hp.qkv_bias);
        L.bv = b.vec(p + "attn_v.bias", Hkv, hp.qkv_bias);
        L.bo = b.vec(p + "attn_output.bias", E, false);
        if (hp.qk_norm) {
            L.q_norm = b.vec(p + "attn_q_norm.weight", D, true);
            L.k_norm = b.vec(p + "attn_k_norm.weight", D, true);
        }
        L.ffn_norm = b.vec(p + "ffn_norm.weight", E, true);
        L.ffn_gate = b.get(p + "ffn_gate.weight", E, hp.n_ff, true);
        L.ffn_up = b.get(p + "ffn_up.weight", E, hp.n_ff, true);
        L.ffn_down = b.get(p + "ffn_down.weight", hp.n_ff, E, true);
        if (hp.post_norms) {
            L.post_attn_norm = b.vec(p + "post_attention_norm.weight", E, true);
            L.post_ffn_norm = b.vec(p + "post_ffw_norm.weight", E, true);
        }
    }
    return m;
}

void Model::pack_for_cpu() const {
    std::call_once(pack_once_, [this] {
        if (kernel_impl() != 3) return;
        // The Model is never const itself (from_gguf makes it); contexts see it const.
        Model &self = const_cast<Model &>(*this);
        // A tied output shares token_embd's bytes: each distinct tensor once, all in one
        // block (decode streams them every token: huge pages, weight_memory.h).
        std::vector<Tensor *> todo;
        for (Tensor *t : {&self.output, &self.tok_embd}) todo.push_back(t);
        for (LayerWeights &L : self.layers)
            for (Tensor *t : {&L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_gate, &L.ffn_up, &L.ffn_down}) todo.push_back(t);
        std::map<const void *, size_t> offset;
        size_t total = 0;
        for (Tensor *t : todo) {
            if (!*t || t->ne1 <= 1 || !can_repack(t->type) || offset.count(t->data)) continue;
            offset.emplace(t->data, total);
            total += (size_t(t->ne1) * t->row_bytes + 63) / 64 * 64;
        }
        if (total == 0) return;
        packed_ = alloc_weight_copy(total);
        std::map<const void *, bool> done;
        for (Tensor *t : todo) {
            auto it = offset.find(t->data);
            if (!*t || it == offset.end()) continue;
            uint8_t *dst = packed_.get() + it->second;
            if (!done[t->data]) repack_rows(t->type, t->ne0, t->ne1, t->data, t->row_bytes, dst);
            done[t->data] = true;
            t->packed = dst;
        }
    });
}

}  // namespace tactic
