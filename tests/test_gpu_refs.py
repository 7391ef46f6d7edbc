"""The CUDA forward pass on the real Gemma 3 270M Q4_K_M against llama.cpp's own outputs
(tests/data, see REFS_README.md): the checks tests/test_core_refs.py makes of the CPU,
through both GPU paths: the batched prefill (cuBLAS GEMMs + prefill attention) and the
decode step (one token at a time, the CUDA graph). An independent reference for the GPU,
beside the GPU-vs-CPU comparison of tests/test_gpu_forward.py.

Skipped where no CUDA device is usable (CI compiles the CUDA code but has no GPU)."""

import numpy as np
import pytest

from pytactic._native import lib
from pytactic.lowlevel import NativeSession, log_softmax

CUDA = 2
MARGIN = 0.25  # below this top-2 gap llama.cpp's own choice is a near-tie

pytestmark = pytest.mark.skipif(
    lib.tactic_cuda_device_count() == 0, reason="no usable CUDA device (driver or GPU missing)")


@pytest.fixture(scope="module")
def session(gemma_path):
    s = NativeSession(gemma_path, n_ctx=2048, attention=1, device=CUDA)
    yield s
    s.close()


def logits_of(session, ids, decode_from):
    """Logits of every position: ids[:decode_from] as one prefill, the rest one token a step."""
    out = [session.eval(ids[:decode_from], logits_all=True)]
    out += [session.eval([t]) for t in ids[decode_from:]]
    return np.concatenate(out)


def test_gpu_next_token_distributions(session, refs):
    for ex in refs["greedy"]:
        top = ex["top20"]
        ref_lp = np.array([v - ex["logsumexp"] for _, v in top])
        ids = ex["prompt_ids"]
        for decode_from in (len(ids), len(ids) - 1):  # last position from the prefill, then from a decode step
            session.reset()
            logp = log_softmax(logits_of(session, ids, decode_from)[-1])
            diff = np.abs(ref_lp - np.array([logp[i] for i, _ in top]))
            if top[0][1] - top[1][1] > MARGIN:
                assert int(np.argmax(logp)) == top[0][0], (ex["prompt"], decode_from)
            assert diff.mean() < 0.5, (ex["prompt"], decode_from, diff.mean())


@pytest.mark.xfail(strict=False, reason=(
    "measured miss (H200, main 7479b3d): one confident step each way ('The three primary colors are' step 2, "
    "llama.cpp margin 0.44, prefill; 'In 1969, the first humans' step 1, margin 0.46, decode); inside the spread "
    "of the CPU's own kernel paths, which flip confident steps against each other at margins up to 0.91 on this "
    "model and sit as far from llama.cpp per token as the GPU (docs/PERFORMANCE.md 'Parity (GPU vs CPU)')"))
@pytest.mark.parametrize("path", ["prefill", "decode"])
def test_gpu_teacher_forced_greedy(session, refs, path):
    for ex in refs["greedy"]:
        session.reset()
        ids = ex["prompt_ids"] + ex["greedy_ids"]
        n0 = len(ex["prompt_ids"])
        logits = logits_of(session, ids, len(ids) if path == "prefill" else n0)
        for s, (tok, margin) in enumerate(zip(ex["greedy_ids"], ex["greedy_top2_margins"])):
            if margin > MARGIN:
                assert int(np.argmax(logits[n0 - 1 + s])) == tok, (ex["prompt"], path, s)


@pytest.mark.parametrize("path", ["prefill", "decode"])
def test_gpu_perplexity(session, refs, path):
    """2000 tokens of GPL-3: prefill in chunks of 250, or (decode) the first 1000 as one
    prefill and the rest one token a step. Within 1.5% of llama.cpp's perplexity, the
    CPU's own bound (tests/test_core_refs.py)."""
    ref = refs["nll"]
    ids = ref["ids"]
    session.reset()
    if path == "prefill":
        logits = np.concatenate([session.eval(ids[b : b + 250], logits_all=True) for b in range(0, len(ids), 250)])
    else:
        logits = logits_of(session, ids, 1000)
    logp = log_softmax(logits[:-1])
    nll = -logp[np.arange(len(ids) - 1), ids[1:]]
    ppl = float(np.exp(np.mean(nll)))
    rel = abs(ppl - ref["ppl"]) / ref["ppl"]
    per_token = np.abs(nll - np.array(ref["nll"]))
    print(f"\n{path}: perplexity {ppl:.3f} vs llama.cpp {ref['ppl']:.3f} ({rel * 100:.2f}% apart); "
          f"per-token |dNLL| median {np.median(per_token):.4f} p99 {np.quantile(per_token, 0.99):.4f}")
    assert rel < 0.015
