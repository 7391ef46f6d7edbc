"""The native sampler's token mask (tactic_sampler_sample_masked) against a numpy twin
of llama.cpp's chain written from sampler.h: masked tokens are removed first, then
penalties -> top-k -> top-p -> min-p -> temperature act on the allowed tokens only."""

from collections import Counter

import numpy as np
import pytest

from pytactic.errors import InvalidArgumentError
from pytactic.sampling import Sampler


def pack(allowed: np.ndarray) -> np.ndarray:
    """bool[n] -> uint32 words, bit i % 32 of word i // 32."""
    n = allowed.shape[0]
    bits = np.zeros(((n + 31) // 32) * 32, dtype=np.uint8)
    bits[:n] = allowed
    return np.packbits(bits, bitorder="little").view(np.uint32)


def twin(logits, allowed, history=(), temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0,
         presence_penalty=0.0, frequency_penalty=0.0):
    """Probabilities of each token after the chain (float64), from the spec."""
    w = np.where(np.isnan(logits), -np.inf, logits).astype(np.float32)
    w[~allowed] = -np.inf
    for tok, count in Counter(history).items():
        l = w[tok]
        l = l * repeat_penalty if l <= 0 else l / repeat_penalty
        w[tok] = np.float32(l - (count * frequency_penalty + presence_penalty))
    finite = np.isfinite(w)
    ids = np.nonzero(finite)[0]
    order = ids[np.lexsort((ids, -w[ids]))]  # higher logit first, ties by lower id
    if top_k > 0:
        order = order[:top_k]
    mx = float(w[order[0]])
    p = np.exp(w[order].astype(np.float64) - mx)
    if top_p < 1.0:
        cum = np.cumsum(p)
        keep = int(np.searchsorted(cum, top_p * p.sum()) + 1)
        order, p = order[:keep], p[:keep]
    if min_p > 0:
        keep = w[order] >= mx + np.log(min_p)
        order, p = order[keep], p[keep]
    q = np.exp((w[order].astype(np.float64) - mx) / temperature)
    out = np.zeros(logits.shape[0])
    out[order] = q / q.sum()
    return out


def draws(sampler, logits, mask, n):
    return Counter(sampler.sample(logits, mask) for _ in range(n))


def test_pack_layout():
    allowed = np.zeros(70, bool)
    allowed[[0, 33, 69]] = True
    words = pack(allowed)
    assert words.tolist() == [1, 2, 32]


def test_greedy_picks_best_allowed():
    rng = np.random.default_rng(0)
    s = Sampler(temperature=0.0, seed=1)
    for n in (5, 31, 32, 33, 1000, 262144):
        x = rng.normal(size=n).astype(np.float32) * 4
        allowed = rng.random(n) < 0.3
        allowed[rng.integers(n)] = True
        want = int(np.flatnonzero(allowed)[np.argmax(x[allowed])])
        assert s.sample(x, pack(allowed)) == want


def test_only_allowed_tokens_and_twin_support():
    rng = np.random.default_rng(1)
    x = rng.normal(size=200).astype(np.float32) * 2
    allowed = rng.random(200) < 0.25
    kw = dict(temperature=1.0, top_k=5, top_p=0.9, min_p=0.05)
    p = twin(x, allowed, **kw)
    got = draws(Sampler(seed=3, **kw), x, pack(allowed), 3000)
    assert set(got) <= set(np.flatnonzero(allowed).tolist())
    assert set(got) == set(np.flatnonzero(p > 0).tolist())
    # without the mask the top tokens would be others: the mask acted before top-k
    unmasked = set(np.argsort(-x)[:5].tolist())
    assert unmasked - set(np.flatnonzero(allowed).tolist())


@pytest.mark.parametrize("kw", [
    dict(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05),
    dict(temperature=1.5, top_k=0, top_p=0.8, min_p=0.0),
    dict(temperature=0.5, top_k=3, top_p=1.0, min_p=0.0),
    dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.2, repeat_penalty=1.3, presence_penalty=0.4,
         frequency_penalty=0.2),
])
def test_frequencies_match_twin(kw):
    rng = np.random.default_rng(2)
    x = rng.normal(size=64).astype(np.float32)
    allowed = np.zeros(64, bool)
    allowed[rng.choice(64, 12, replace=False)] = True
    history = [int(t) for t in rng.choice(np.flatnonzero(allowed), 6)] + [int(np.argmax(x))]
    p = twin(x, allowed, history, **kw)
    s = Sampler(seed=5, **kw)
    for t in history:
        s.accept(t)
    n = 6000
    got = draws(s, x, pack(allowed), n)
    assert set(got) <= set(np.flatnonzero(p > 0).tolist())
    for tok in np.flatnonzero(p > 0.02):
        f = got[int(tok)] / n
        sd = np.sqrt(p[tok] * (1 - p[tok]) / n)
        assert abs(f - p[tok]) < 5 * sd + 1e-3, (tok, f, p[tok])


def test_penalties_act_on_allowed_tokens_only():
    # A masked-out token with a huge logit must not come back through a penalty:
    # negative presence/frequency penalties raise a logit, but not a masked one.
    x = np.array([10.0, 1.0, 0.5, 0.0], np.float32)
    allowed = np.array([False, True, True, True])
    s = Sampler(temperature=0.0, presence_penalty=-100.0, seed=1)
    s.accept(0)
    assert s.sample(x, pack(allowed)) == 1


def test_nothing_allowed_is_an_error():
    x = np.zeros(40, np.float32)
    with pytest.raises(InvalidArgumentError, match="mask"):
        Sampler(temperature=0.0).sample(x, pack(np.zeros(40, bool)))
    x[3] = np.nan
    allowed = np.zeros(40, bool)
    allowed[3] = True
    with pytest.raises(InvalidArgumentError):
        Sampler(temperature=0.7).sample(x, pack(allowed))


def test_mask_shape_checked():
    with pytest.raises(ValueError, match="words"):
        Sampler().sample(np.zeros(64, np.float32), np.zeros(3, np.uint32))


@pytest.mark.parametrize("allowed_share", [None, 0.6, 0.0001])  # None: no mask; 0.0001: ~7 < k tokens
def test_top_k_support_on_a_large_vocab_with_ties(allowed_share):
    # Past the first blocks the sampler skips whole 32-token blocks that cannot beat the
    # k-th best: with many equal logits (ties go to the lower id) and NaNs, on a vocabulary
    # that is not a whole number of blocks, the support must still be the twin's.
    rng = np.random.default_rng(9)
    n = 70001
    x = np.round(rng.normal(size=n) * 2).astype(np.float32)  # few distinct values
    x[rng.choice(n, 50, replace=False)] = np.nan
    x[n - 1] = 20.0  # the best token sits in the partial last block
    masked = allowed_share is not None
    allowed = rng.random(n) < (allowed_share if masked else 1.1)
    allowed[n - 1] = True
    kw = dict(temperature=1e6, top_k=40, top_p=1.0, min_p=0.0)  # flat over the kept 40
    p = twin(x, allowed, **kw)
    got = draws(Sampler(seed=4, **kw), x, pack(allowed) if masked else None, 4000)
    assert set(got) == set(np.flatnonzero(p > 0).tolist())
