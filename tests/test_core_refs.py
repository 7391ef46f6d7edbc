"""The native runtime against llama.cpp's outputs for Gemma 3 270M Q4_K_M
(tests/data, made by llama.cpp; see tests/data/REFS_README.md). Token ids only:
no tokenizer involved. llama.cpp rounds activations to 8 bits for its quantized
dot products, so agreement is within tolerances, not exact."""

import numpy as np
import pytest

from pytactic.lowlevel import NativeSession, log_softmax

MARGIN = 0.25  # below this top-2 gap llama.cpp's own choice is a near-tie


@pytest.fixture(scope="module")
def session(gemma_path):
    s = NativeSession(gemma_path, n_ctx=2048)
    yield s
    s.close()


def test_next_token_distributions(session, refs):
    report = []
    for ex in refs["greedy"]:
        session.reset()
        logp = log_softmax(session.eval(ex["prompt_ids"])[-1])
        top = ex["top20"]
        ref_lp = np.array([v - ex["logsumexp"] for _, v in top])
        our_lp = np.array([logp[i] for i, _ in top])
        diff = np.abs(ref_lp - our_lp)
        report.append((ex["prompt"], diff.mean(), diff.max()))
        if top[0][1] - top[1][1] > MARGIN:
            assert int(np.argmax(logp)) == top[0][0], ex["prompt"]
        assert diff.mean() < 0.5, (ex["prompt"], diff.mean())
    print("\nprompt | mean |dlogp| top-20 | max")
    for p, mean, mx in report:
        print(f"{p[:32]!r:36} {mean:.3f} {mx:.3f}")


def test_teacher_forced_greedy(session, refs):
    for ex in refs["greedy"]:
        session.reset()
        ids = ex["prompt_ids"] + ex["greedy_ids"]
        logits = session.eval(ids, logits_all=True)
        n0 = len(ex["prompt_ids"])
        for s, (tok, margin) in enumerate(zip(ex["greedy_ids"], ex["greedy_top2_margins"])):
            if margin > MARGIN:
                assert int(np.argmax(logits[n0 - 1 + s])) == tok, (ex["prompt"], s)


def test_perplexity(session, refs):
    ref = refs["nll"]
    ids = ref["ids"]
    session.reset()
    nll = []
    chunk = 250  # keeps the logits of a chunk, not of all 2000 positions
    for b in range(0, len(ids), chunk):
        part = ids[b : b + chunk]
        logp = log_softmax(session.eval(part, logits_all=True))
        for i in range(len(part)):
            j = b + i
            if j + 1 < len(ids):
                nll.append(-logp[i, ids[j + 1]])
    ppl = float(np.exp(np.mean(nll)))
    rel = abs(ppl - ref["ppl"]) / ref["ppl"]
    print(f"\nperplexity {ppl:.3f} vs llama.cpp {ref['ppl']:.3f} ({rel * 100:.2f}% apart)")
    assert rel < 0.015
