// TEMPORARY until the Tactic implementation lands: full attention behind the seam.
#include "../cpu/attention.h"
#include "tactic_attention.h"

namespace tactic {

struct TacticAttention::Impl {
    HParams hp;
    int n_ctx;
    std::vector<TacticHeadStat> stats;
};

TacticAttention::TacticAttention(const TacticParams &, const HParams &hp, int n_ctx) : impl_(new Impl{hp, n_ctx, {}}) {}
TacticAttention::~TacticAttention() = default;

void TacticAttention::decode(int il, const float *q, const uint16_t *K, const uint16_t *V, int n_tokens, float *out,
                             ThreadPool &pool) {
    const HParams &hp = impl_->hp;
    const int D = hp.head_dim, group = hp.n_head / hp.n_head_kv;
    const size_t head_stride = size_t(impl_->n_ctx) * D;
    for (int g = 0; g < hp.n_head_kv; g++)
        attention_split(q + size_t(g) * group * D, group, D, K + g * head_stride, V + g * head_stride, 0, n_tokens, out + size_t(g) * group * D, pool);
}
void TacticAttention::truncate(int) {}
const std::vector<TacticHeadStat> &TacticAttention::last_stats() const { return impl_->stats; }
double TacticAttention::clustering_seconds() const { return 0; }
double TacticAttention::selection_seconds() const { return 0; }
void TacticAttention::reset_timings() {}

}  // namespace tactic
