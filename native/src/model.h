// Weights bound to an architecture: the tensors of the GGUF file, typed and checked.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "arch.h"
#include "cpu/weight_memory.h"

namespace tactic {

class GGUFFile;

// A view of a 1-D or 2-D tensor inside the mapped file. For a matrix, ne0 = the
// input width (contiguous, in blocks of `type`), ne1 = rows (outputs).
struct Tensor {
    const void *data = nullptr;
    uint32_t type = 0;
    int64_t ne0 = 0, ne1 = 1;
    size_t row_bytes = 0;
    const char *name = "";
    // The same rows repacked for the AVX-512 tiles (quant.h: repack_rows), or null;
    // set by Model::pack_for_cpu, read only by matmul.
    const void *packed = nullptr;
    explicit operator bool() const { return data != nullptr; }
    const uint8_t *row(int64_t i) const { return static_cast<const uint8_t *>(data) + size_t(i) * row_bytes; }
};

struct LayerWeights {
    Tensor attn_norm, wq, wk, wv, wo, bq, bk, bv, bo;
    Tensor q_norm, k_norm, post_attn_norm;
    Tensor ffn_norm, ffn_gate, ffn_up, ffn_down, post_ffn_norm;
};

struct Model {
    HParams hp;
    Tensor tok_embd, output_norm, output;  // output == tok_embd when tied
    Tensor rope_freqs;                     // llama 3.1: per-pair divisors, or empty
    std::vector<LayerWeights> layers;
    int64_t n_params = 0;
    int64_t n_bytes = 0;

    // Binds every tensor the architecture needs, checking shapes and types.
    static std::unique_ptr<Model> from_gguf(const GGUFFile &file);

    // Repacks the legacy-type matrices for the AVX-512 tiles when that is the kernel
    // path (once per model, on the first CPU context; a copy of those tensors' bytes).
    void pack_for_cpu() const;

private:
    mutable std::once_flag pack_once_;
    mutable WeightCopy packed_;  // every repacked tensor, one huge-page backed block
};

}  // namespace tactic
