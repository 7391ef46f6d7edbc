"""The native sampler (tactic_sampler_*): greedy is argmax, top-k / top-p / min-p keep
exactly the tokens llama.cpp's rules keep, penalties follow llama.cpp, a seed makes
runs reproducible, and draws follow the softmax."""

from collections import Counter

import numpy as np
import pytest

from pytactic.errors import InvalidArgumentError
from pytactic.sampling import Sampler, SamplingParams

OFF = dict(top_k=0, top_p=1.0, min_p=0.0)  # no truncation


def logits_of(probs):
    return np.log(np.asarray(probs, dtype=np.float64)).astype(np.float32)


def support(sampler, logits, n=3000):
    return set(sampler.sample(logits) for _ in range(n))


def test_greedy_is_argmax():
    rng = np.random.default_rng(0)
    s = Sampler(temperature=0.0, seed=1)
    for _ in range(50):
        x = rng.normal(size=1000).astype(np.float32) * 5
        assert s.sample(x) == int(np.argmax(x))
    # negative temperature is greedy too; ties go to the first index, as llama.cpp
    s = Sampler(temperature=-1.0)
    assert s.sample(np.array([1.0, 3.0, 3.0, 2.0], np.float32)) == 1


def test_greedy_ignores_nan_and_full_vocab():
    x = np.full(262144, -5.0, np.float32)
    x[7] = np.nan
    x[123456] = 4.0
    assert Sampler(temperature=0).sample(x) == 123456


def test_top_k_support():
    x = logits_of([0.3, 0.25, 0.2, 0.15, 0.06, 0.04])
    s = Sampler(temperature=1.0, top_k=3, top_p=1.0, min_p=0.0, seed=3)
    assert support(s, x) == {0, 1, 2}
    s = Sampler(temperature=5.0, top_k=1, top_p=1.0, min_p=0.0, seed=3)
    assert support(s, x, 200) == {0}


def test_top_p_support():
    x = logits_of([0.5, 0.3, 0.15, 0.05])
    # keep the smallest head whose mass reaches top_p
    assert support(Sampler(temperature=1.0, top_p=0.75, top_k=0, min_p=0, seed=1), x) == {0, 1}
    assert support(Sampler(temperature=1.0, top_p=0.85, top_k=0, min_p=0, seed=1), x) == {0, 1, 2}
    assert support(Sampler(temperature=1.0, top_p=0.4, top_k=0, min_p=0, seed=1), x) == {0}
    assert support(Sampler(temperature=1.0, top_p=1.0, top_k=0, min_p=0, seed=1), x) == {0, 1, 2, 3}


def test_top_p_on_a_large_vocab():
    # top-p over 262k tokens must find the head without sorting everything wrongly:
    # 100 tokens carry ~all the mass, the rest are far below.
    rng = np.random.default_rng(1)
    x = rng.normal(size=262144).astype(np.float32) - 30
    head = rng.choice(262144, 100, replace=False)
    x[head] = rng.normal(size=100).astype(np.float32)
    p = np.exp(x - x.max())
    p /= p.sum()
    order = np.argsort(-p)
    k = int(np.searchsorted(np.cumsum(p[order]), 0.9) + 1)
    # top-p looks at the probabilities before temperature: a high temperature then
    # draws the kept tokens almost uniformly, so a few hundred draws show them all.
    got = support(Sampler(temperature=1000.0, top_p=0.9, top_k=0, min_p=0, seed=2), x, 800)
    assert got == set(order[:k].tolist())


def test_min_p_support():
    x = logits_of([0.5, 0.3, 0.15, 0.05])
    # keep p >= min_p * p_max
    assert support(Sampler(temperature=1.0, min_p=0.25, top_k=0, top_p=1, seed=1), x) == {0, 1, 2}
    assert support(Sampler(temperature=1.0, min_p=0.5, top_k=0, top_p=1, seed=1), x) == {0, 1}
    assert support(Sampler(temperature=1.0, min_p=1.0, top_k=0, top_p=1, seed=1), x) == {0}


def test_repeat_penalty_divides_positive_and_multiplies_negative():
    s = Sampler(temperature=0, repeat_penalty=1.1, repeat_last_n=64)
    x = np.array([2.0, 1.9, -5, -5], np.float32)
    assert s.sample(x) == 0
    s.accept(0)
    assert s.sample(x) == 1  # 2.0 / 1.1 = 1.82 < 1.9
    s = Sampler(temperature=0, repeat_penalty=1.1)
    y = np.array([-1.0, -1.05, -9], np.float32)
    s.accept(0)
    assert s.sample(y) == 1  # -1.0 * 1.1 = -1.1 < -1.05


def test_presence_and_frequency_penalties():
    x = np.array([1.0, 0.8], np.float32)
    s = Sampler(temperature=0, presence_penalty=0.3)
    s.accept(0)
    assert s.sample(x) == 1
    s = Sampler(temperature=0, frequency_penalty=0.15)
    s.accept(0)
    assert s.sample(x) == 0  # 1.0 - 0.15 = 0.85 > 0.8
    s.accept(0)
    assert s.sample(x) == 1  # 1.0 - 0.30 = 0.70 < 0.8


def test_penalty_window():
    x = np.array([2.0, 1.9, -5, -5, -5], np.float32)
    s = Sampler(temperature=0, repeat_penalty=1.5, repeat_last_n=2)
    s.accept(0)
    assert s.sample(x) == 1
    s.accept(3)
    s.accept(4)  # token 0 leaves the window of 2
    assert s.sample(x) == 0
    s = Sampler(temperature=0, repeat_penalty=1.5, repeat_last_n=0)  # 0: no window
    s.accept(0)
    assert s.sample(x) == 0
    s = Sampler(temperature=0, repeat_penalty=1.5, repeat_last_n=-1)  # whole history
    s.accept(0)
    for _ in range(500):
        s.accept(4)
    assert s.sample(x) == 1
    s.reset()  # forgets the history
    assert s.sample(x) == 0


def test_seed_reproducible():
    rng = np.random.default_rng(5)
    x = rng.normal(size=5000).astype(np.float32)

    def run(seed):
        s = Sampler(temperature=1.0, top_k=0, top_p=0.95, min_p=0.0, seed=seed)
        return [s.sample(x) for _ in range(200)]

    a, b, c = run(42), run(42), run(43)
    assert a == b
    assert a != c
    s = Sampler(temperature=1.0, top_k=0, top_p=0.95, min_p=0.0, seed=42)
    first = [s.sample(x) for _ in range(50)]
    s.reset()  # restarts the generator from the seed
    assert [s.sample(x) for _ in range(50)] == first == a[:50]


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_frequencies_match_softmax(temperature):
    x = np.array([1.0, 0.5, 0.0, -0.5, -1.5, 2.0], np.float32)
    p = np.exp((x - x.max()) / temperature)
    p /= p.sum()
    n = 30000
    s = Sampler(temperature=temperature, seed=7, **OFF)
    counts = Counter(s.sample(x) for _ in range(n))
    freq = np.array([counts[i] / n for i in range(len(x))])
    # 5 standard deviations of a binomial proportion
    tol = 5 * np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) <= tol), (freq, p)


def test_truncated_distribution_renormalised():
    # after top-k, the kept tokens are drawn in proportion to their softmax
    x = logits_of([0.4, 0.3, 0.2, 0.1])
    n = 20000
    s = Sampler(temperature=1.0, top_k=2, top_p=1, min_p=0, seed=11)
    counts = Counter(s.sample(x) for _ in range(n))
    assert set(counts) == {0, 1}
    assert abs(counts[0] / n - 4 / 7) < 0.02


@pytest.mark.parametrize(
    "kw, what",
    [
        (dict(top_p=1.5), "top_p"),
        (dict(top_p=-0.1), "top_p"),
        (dict(min_p=-0.1), "min_p"),
        (dict(min_p=2.0), "min_p"),
        (dict(repeat_penalty=0.0), "repeat_penalty"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(repeat_last_n=-2), "repeat_last_n"),
        (dict(presence_penalty=float("inf")), "presence_penalty"),
    ],
)
def test_invalid_params_python(kw, what):
    with pytest.raises(ValueError, match=what):
        Sampler(**kw)


def test_invalid_params_native():
    # the C ABI validates on its own (callers other than Python)
    from pytactic._native import ffi, lib

    for field, value in [("top_p", 1.5), ("min_p", -1.0), ("repeat_penalty", 0.0),
                         ("temperature", float("nan")), ("repeat_last_n", -5)]:
        p = lib.tactic_sampler_default_params()
        setattr(p, field, value)
        out = ffi.new("tactic_sampler **")
        st = lib.tactic_sampler_new(ffi.new("tactic_sampler_params *", p), out)
        assert st == InvalidArgumentError.status, field
        assert field in ffi.string(lib.tactic_last_error()).decode()
        assert out[0] == ffi.NULL


def test_invalid_calls():
    s = Sampler(temperature=1.0, seed=1)
    with pytest.raises(InvalidArgumentError, match="n_vocab"):
        s.sample(np.zeros(0, np.float32))
    with pytest.raises(InvalidArgumentError, match="-inf"):
        s.sample(np.full(4, -np.inf, np.float32))
    with pytest.raises(InvalidArgumentError, match="token"):
        s.accept(-1)
    with pytest.raises(ValueError, match="1-D"):
        s.sample(np.zeros((2, 2), np.float32))
    # the sampler still works after errors
    assert s.sample(np.array([0.0, 50.0], np.float32)) == 1


def test_default_params_are_llama_cpp_defaults():
    from pytactic._native import lib

    p = lib.tactic_sampler_default_params()
    assert (p.top_k, round(p.top_p, 4), round(p.min_p, 4), round(p.temperature, 4)) == (40, 0.95, 0.05, 0.8)
    assert p.repeat_penalty == 1.0 and p.repeat_last_n == 64
    d = SamplingParams()
    assert (d.top_k, d.top_p, d.min_p, d.temperature) == (40, 0.95, 0.05, 0.8)
