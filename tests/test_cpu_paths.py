"""Every CPU kernel path this machine runs (TACTIC_KERNELS=scalar / avx2 / the default,
AVX-512 where the CPU has it), end to end on Gemma 3 270M against llama.cpp's outputs
(tests/data): next-token distributions of the short prompts (the last token of each
as a decode step after the rest as prefill), and the per-token NLL
over 750 tokens of text (two prefill batches: the prefill tiles, the attention blocks
and the gated activation all run their vector code). Each path runs in its own process
because the kernel choice is made once per process.

The paths cannot be held to each other more tightly than to llama.cpp: activations are
rounded to 8 bits before every quantized product, so a last-bit difference in a float
sum flips a rounding now and then, and the scalar and AVX2 paths already differ by up
to ~0.5 in a log-probability on these prompts."""

import numpy as np
import pytest

from kernel_paths import KERNELS, impl_available, run_path

MARGIN = 0.25  # as test_core_refs: below this top-2 gap llama.cpp's choice is a near-tie


@pytest.mark.parametrize("kernels", list(KERNELS))
def test_path_matches_llama_cpp(kernels, gemma_path, refs):
    if not impl_available(KERNELS[kernels]):
        pytest.skip(f"this CPU cannot run the {kernels} kernels")
    examples = refs["greedy"]
    logps = run_path(kernels, gemma_path, [ex["prompt_ids"] for ex in examples])
    for ex, logp in zip(examples, logps):
        top = ex["top20"]
        diff = np.abs(np.array([v - ex["logsumexp"] for _, v in top]) - np.array([logp[i] for i, _ in top]))
        if top[0][1] - top[1][1] > MARGIN:
            assert int(np.argmax(logp)) == top[0][0], (kernels, ex["prompt"])
        assert diff.mean() < 0.5, (kernels, ex["prompt"], diff.mean())


@pytest.mark.parametrize("kernels", ["avx2", "avx512"])
def test_path_nll_matches_llama_cpp(kernels, gemma_path, refs):
    if not impl_available(KERNELS[kernels]):
        pytest.skip(f"this CPU cannot run the {kernels} kernels")
    n = 750
    ids, ref = refs["nll"]["ids"][:n], np.array(refs["nll"]["nll"][: n - 1])
    nll = run_path(kernels, gemma_path, [ids], mode="nll")
    assert nll.shape == ref.shape
    # test_core_refs holds the perplexity over 2000 tokens to 1.5%; here the mean NLL
    # over these 749 tokens to 1%, and token by token the bulk close (the AVX2 and
    # AVX-512 paths both measured a median |difference| of 0.053-0.056)
    assert abs(nll.mean() - ref.mean()) / ref.mean() < 0.01, (nll.mean(), ref.mean())
    assert np.median(np.abs(nll - ref)) < 0.1, np.median(np.abs(nll - ref))
