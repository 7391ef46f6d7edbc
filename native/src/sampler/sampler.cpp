// The sampler: llama.cpp's default chain (penalties, top-k, top-p, min-p,
// temperature, draw) over one row of logits. See sampler.h.
#include "../sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "../common.h"

namespace tactic {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Tokens more than this many nats under the top carry < 1e-7 of its probability each.
constexpr float kHeadSpan = 16.0f;

// Higher logit first; equal logits by lower id, so every step is deterministic.
bool before(const std::pair<float, int32_t> &a, const std::pair<float, int32_t> &b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
}

void require(bool ok, const std::string &msg) {
    TACTIC_CHECK(ok, TACTIC_ERR_INVALID_ARGUMENT, "sampler: " + msg);
}

// The passes over the whole vocabulary (262,144 logits for Gemma) are most of a sample's
// time, and on a GPU decode step that time shows: they are written as fixed-width blocks
// of independent lanes that the compiler vectorises.
constexpr int32_t kBlock = 32;  // one mask word
constexpr uint32_t kLaneBit[kBlock] = {
    1u << 0,  1u << 1,  1u << 2,  1u << 3,  1u << 4,  1u << 5,  1u << 6,  1u << 7,
    1u << 8,  1u << 9,  1u << 10, 1u << 11, 1u << 12, 1u << 13, 1u << 14, 1u << 15,
    1u << 16, 1u << 17, 1u << 18, 1u << 19, 1u << 20, 1u << 21, 1u << 22, 1u << 23,
    1u << 24, 1u << 25, 1u << 26, 1u << 27, 1u << 28, 1u << 29, 1u << 30, 1u << 31};

// Lane-wise running maxima, one per position in a block (elementwise, so it vectorises).
struct BlockMax {
    float m[kBlock];
    BlockMax() { for (float &v : m) v = kNegInf; }
    void add(const float *w) {
        for (int j = 0; j < kBlock; j++) m[j] = w[j] > m[j] ? w[j] : m[j];
    }
    void add_one(float v) { m[0] = v > m[0] ? v : m[0]; }
    float result() const {
        float r = m[0];
        for (int j = 1; j < kBlock; j++) r = m[j] > r ? m[j] : r;
        return r;
    }
};

float max_of(const float *w, int32_t n) {
    BlockMax m;
    int32_t i = 0;
    for (; i + kBlock <= n; i += kBlock) m.add(w + i);
    for (; i < n; i++) m.add_one(w[i]);
    return m.result();
}

// Whether any of the kBlock values at w is above t (NaN never is).
bool any_above(const float *w, float t) {
    int any = 0;
    for (int j = 0; j < kBlock; j++) any |= w[j] > t;
    return any != 0;
}

// w = logits with NaN and masked-out tokens set to -inf; returns the largest w. -inf
// survives the penalties (scaled or shifted by finite amounts) and every later step
// skips it, so masked tokens are removed before everything else.
float load(const float *logits, int32_t n_vocab, const uint32_t *mask, float *w) {
    BlockMax m;
    const int32_t n_full = n_vocab / kBlock * kBlock;
    for (int32_t base = 0; base < n_full; base += kBlock) {
        const uint32_t bits = mask ? mask[base / kBlock] : 0xFFFFFFFFu;
        const float *l = logits + base;
        float *o = w + base;
        if (bits == 0) {  // grammars' masks are mostly whole words of 0 or of 1
            for (int j = 0; j < kBlock; j++) o[j] = kNegInf;
            continue;
        }
        for (int j = 0; j < kBlock; j++) {  // a bit test per lane without variable shifts (SSE2)
            const float v = l[j];
            o[j] = ((bits & kLaneBit[j]) != 0) & (v == v) ? v : kNegInf;
        }
        m.add(o);
    }
    for (int32_t i = n_full; i < n_vocab; i++) {
        const float v = logits[i];
        const bool allowed = !mask || ((mask[i / kBlock] >> (i % kBlock)) & 1u);
        w[i] = allowed && v == v ? v : kNegInf;
        m.add_one(w[i]);
    }
    return m.result();
}

}  // namespace

void Sampler::validate(const tactic_sampler_params &p) {
    require(std::isfinite(p.temperature), "temperature must be a finite number");
    require(std::isfinite(p.top_p) && p.top_p >= 0.0f && p.top_p <= 1.0f,
            "top_p must be in [0, 1], got " + std::to_string(p.top_p));
    require(std::isfinite(p.min_p) && p.min_p >= 0.0f && p.min_p <= 1.0f,
            "min_p must be in [0, 1], got " + std::to_string(p.min_p));
    require(std::isfinite(p.repeat_penalty) && p.repeat_penalty > 0.0f,
            "repeat_penalty must be > 0, got " + std::to_string(p.repeat_penalty));
    require(p.repeat_last_n >= -1, "repeat_last_n must be >= -1 (-1 = whole history), got " +
                                       std::to_string(p.repeat_last_n));
    require(std::isfinite(p.presence_penalty), "presence_penalty must be a finite number");
    require(std::isfinite(p.frequency_penalty), "frequency_penalty must be a finite number");
}

Sampler::Sampler(const tactic_sampler_params &params) : p_(params) {
    validate(params);
    rng_.seed(p_.seed);
}

void Sampler::reset() {
    history_.clear();
    counts_.clear();
    rng_.seed(p_.seed);
}

void Sampler::accept(int32_t token) {
    require(token >= 0, "token id must be >= 0, got " + std::to_string(token));
    if (p_.repeat_last_n == 0) return;  // a zero window: penalties see nothing
    history_.push_back(token);
    counts_[token]++;
    if (p_.repeat_last_n > 0 && history_.size() > size_t(p_.repeat_last_n)) {
        const int32_t old = history_.front();
        history_.pop_front();
        auto it = counts_.find(old);
        if (--it->second == 0) counts_.erase(it);
    }
}

// llama.cpp's rule: the repeat penalty divides a positive logit and multiplies a
// negative one (both push the token down); frequency scales with the count,
// presence is paid once.
bool Sampler::has_penalties() const {
    const bool off = p_.repeat_penalty == 1.0f && p_.presence_penalty == 0.0f &&
                     p_.frequency_penalty == 0.0f;
    return !off && !counts_.empty();
}

void Sampler::apply_penalties(float *logits, int32_t n_vocab) const {
    if (!has_penalties()) return;
    for (const auto &[tok, count] : counts_) {
        if (tok >= n_vocab || count <= 0) continue;
        float &l = logits[tok];
        l = l <= 0.0f ? l * p_.repeat_penalty : l / p_.repeat_penalty;
        l -= float(count) * p_.frequency_penalty + p_.presence_penalty;
    }
}

void Sampler::sort_top(size_t n) {
    n = std::min(n, cand_.size());
    if (n <= n_sorted_) return;
    // cand_[0, n_sorted_) already holds the best n_sorted_, in order: only the rest
    // needs selecting.
    auto first = cand_.begin() + n_sorted_, mid = cand_.begin() + n;
    if (mid != cand_.end()) std::nth_element(first, mid, cand_.end(), before);
    std::sort(first, mid, before);
    n_sorted_ = n;
}

double Sampler::uniform() { return double(rng_() >> 11) * 0x1.0p-53; }

int32_t Sampler::sample(const float *logits, int32_t n_vocab, const uint32_t *mask) {
    require(logits != nullptr, "logits must not be NULL");
    require(n_vocab > 0, "n_vocab must be > 0, got " + std::to_string(n_vocab));

    work_.resize(size_t(n_vocab));
    float *w = work_.data();
    float max_logit = load(logits, n_vocab, mask, w);
    if (has_penalties()) {
        apply_penalties(w, n_vocab);
        max_logit = max_of(w, n_vocab);
    }
    require(max_logit > kNegInf, mask ? "every allowed token's logit is -inf or NaN (or the mask allows none)"
                                      : "every logit is -inf or NaN: nothing to sample");
    if (p_.temperature <= 0.0f) {
        int32_t best = 0;
        while (w[best] != max_logit) best++;  // the first maximum, as llama.cpp's greedy
        return best;
    }

    cand_.clear();
    n_sorted_ = 0;
    double top_p_total = -1;  // the softmax mass top-p measures against
    if (p_.top_k > 0 && p_.top_k < n_vocab) {
        // One pass with a heap of the k best seen so far (its front is the worst of
        // them): most tokens cost one comparison.
        const size_t k = size_t(p_.top_k);
        cand_.reserve(k);
        for (int32_t i = 0; i < n_vocab; i++) {
            // Whole blocks that hold nothing to keep are skipped: once k are held, nothing
            // above the k-th best (a later equal id never beats it); before, nothing above
            // -inf (a grammar's mask often allows fewer than k tokens in all).
            if ((i & (kBlock - 1)) == 0 && i + kBlock <= n_vocab &&
                !any_above(w + i, cand_.size() == k ? cand_.front().first : kNegInf)) {
                i += kBlock - 1;
                continue;
            }
            if (w[i] == kNegInf) continue;
            const std::pair<float, int32_t> c(w[i], i);
            if (cand_.size() < k) {
                cand_.push_back(c);
                std::push_heap(cand_.begin(), cand_.end(), before);
            } else if (before(c, cand_.front())) {
                std::pop_heap(cand_.begin(), cand_.end(), before);
                cand_.back() = c;
                std::push_heap(cand_.begin(), cand_.end(), before);
            }
        }
        std::sort_heap(cand_.begin(), cand_.end(), before);  // best first
        n_sorted_ = cand_.size();
    } else {
        // The whole vocabulary: pass over w once for the top-p mass, then gather as
        // candidates only tokens that top-p and min-p could keep.
        float floor = kNegInf;
        if (p_.min_p > 0.0f) floor = max_logit + std::log(p_.min_p);
        if (p_.top_p < 1.0f) {
            // The kept tokens nearly always lie within kHeadSpan nats of the top: if
            // the mass there reaches the target, the rest need not be looked at.
            double total = 0, head = 0;
            const float head_cut = max_logit - kHeadSpan;
            for (int32_t i = 0; i < n_vocab; i++) {
                if (w[i] == kNegInf) continue;
                const double e = std::exp(w[i] - max_logit);
                total += e;
                if (w[i] >= head_cut) head += e;
            }
            top_p_total = total;
            if (head >= double(p_.top_p) * total) floor = std::max(floor, head_cut);
        }
        for (int32_t i = 0; i < n_vocab; i++)
            if (w[i] > kNegInf && w[i] >= floor) cand_.emplace_back(w[i], i);
    }

    if (p_.top_p < 1.0f) {
        // Keep the smallest head whose probability reaches top_p (at least one),
        // sorting only as far as the cut.
        if (top_p_total < 0) {  // after top-k: the mass of the k left
            top_p_total = 0;
            for (const auto &c : cand_) top_p_total += std::exp(c.first - max_logit);
        }
        const double target = double(p_.top_p) * top_p_total;
        double cum = 0;
        size_t keep = cand_.size(), i = 0;
        for (size_t chunk = 64; i < cand_.size(); chunk *= 4) {
            sort_top(chunk);
            for (; i < n_sorted_; i++) {
                cum += std::exp(cand_[i].first - max_logit);
                if (cum >= target) { keep = i + 1; break; }
            }
            if (keep != cand_.size() || n_sorted_ == cand_.size()) break;
        }
        cand_.resize(keep);
        n_sorted_ = std::min(n_sorted_, keep);
    }

    if (p_.min_p > 0.0f) {
        // p >= min_p * p_max  <=>  logit >= max_logit + log(min_p)
        const float threshold = max_logit + std::log(p_.min_p);
        size_t kept = 0;
        for (size_t i = 0; i < cand_.size(); i++)
            if (cand_[i].first >= threshold) cand_[kept++] = cand_[i];
        if (kept == 0) kept = 1;  // cannot happen (the max passes), kept for safety
        cand_.resize(kept);
        n_sorted_ = std::min(n_sorted_, kept);
    }

    // Temperature, softmax, one draw.
    const float inv_t = 1.0f / p_.temperature;
    probs_.resize(cand_.size());
    double total = 0;
    for (size_t i = 0; i < cand_.size(); i++) {
        probs_[i] = std::exp((cand_[i].first - max_logit) * inv_t);
        total += probs_[i];
    }
    const double u = uniform() * total;
    double cum = 0;
    for (size_t i = 0; i < cand_.size(); i++) {
        cum += probs_[i];
        if (u < cum) return cand_[i].second;
    }
    return cand_.back().second;  // rounding left u at the very end
}

}  // namespace tactic
