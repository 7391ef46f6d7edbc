// C ABI: the sampler (see sampler.h for the chain and its order).
#include "../sampler.h"

#include "guard.h"

using tactic::guard;

struct tactic_sampler {
    tactic::Sampler s;
    explicit tactic_sampler(const tactic_sampler_params &p) : s(p) {}
};

extern "C" {

TACTIC_API tactic_sampler_params tactic_sampler_default_params(void) {
    // llama.cpp's defaults, except a fixed seed (reproducible unless the caller
    // asks for another).
    tactic_sampler_params p;
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 0.0f;
    p.seed = 0;
    return p;
}

TACTIC_API tactic_status tactic_sampler_new(const tactic_sampler_params *params, tactic_sampler **out) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(out, "out must not be NULL");
        *out = nullptr;
        const tactic_sampler_params p = params ? *params : tactic_sampler_default_params();
        *out = new tactic_sampler(p);
    });
}

TACTIC_API void tactic_sampler_free(tactic_sampler *s) { delete s; }

TACTIC_API tactic_status tactic_sampler_sample(tactic_sampler *s, const float *logits, int32_t n_vocab,
                                               int32_t *out_token) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(s && logits && out_token, "sampler, logits and out_token must not be NULL");
        *out_token = -1;
        *out_token = s->s.sample(logits, n_vocab);
    });
}

TACTIC_API tactic_status tactic_sampler_sample_masked(tactic_sampler *s, const float *logits, int32_t n_vocab,
                                                      const uint32_t *mask, int32_t *out_token) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(s && logits && mask && out_token, "sampler, logits, mask and out_token must not be NULL");
        *out_token = -1;
        *out_token = s->s.sample(logits, n_vocab, mask);
    });
}

TACTIC_API tactic_status tactic_sampler_accept(tactic_sampler *s, int32_t token) {
    return guard([&] {
        TACTIC_REQUIRE_ARG(s, "sampler must not be NULL");
        s->s.accept(token);
    });
}

TACTIC_API void tactic_sampler_reset(tactic_sampler *s) {
    if (s) s->s.reset();
}

}  // extern "C"
