"""Tactic sparse decode attention through the C ABI on the real model (gemma3-270m,
global layers 5/11/17): statistics are valid, P = 1 and the FULL selector equal full
attention, the baselines behave, and bad arguments are typed errors. One ~1.2K-token
prefill of real text is shared by the module (clustering needs >= 512 tokens)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from pytactic._native import ffi, lib  # noqa: E402
from pytactic.errors import InvalidArgumentError  # noqa: E402

N_PROMPT = 1200


@pytest.fixture(scope="module")
def env(gemma_path):
    from tactic_common import Ctx, Model, long_text_tokens

    model = Model(gemma_path)
    ids = long_text_tokens(model, N_PROMPT + 8)
    ctx = Ctx(model, N_PROMPT + 16, attention="tactic", p=0.9, debug=True, n_sink=4, n_recent=32,
              tactic_incremental=1)
    ctx.prefill(ids[:N_PROMPT], chunk=N_PROMPT)
    return model, ctx, ids


def decode_logits(ctx, ids, selector, p, n=2):
    ctx.truncate(N_PROMPT)
    ctx.set_selection(selector, p)
    out = []
    for t in ids[N_PROMPT : N_PROMPT + n]:
        ctx.eval([t])
        out.append(ctx.logits(-1))
    return out


def test_head_stats_are_valid(env):
    model, ctx, ids = env
    decode_logits(ctx, ids, "tactic", 0.9)
    st = ctx.head_stats()
    assert sorted({s.layer for s in st}) == [5, 11, 17]
    assert len(st) == 3 * model.n_head
    for s in st:
        assert s.n_tokens == N_PROMPT + 2
        assert 1 <= s.n_selected <= s.n_attended <= s.n_tokens
        assert 0.0 < s.est_mass <= 1.0
        assert 0.0 <= s.true_mass <= 1.0 + 1e-6
    assert any(s.n_attended < s.n_tokens for s in st), "Tactic at P=0.9 attended every token in every layer"


def test_debug_eval_invariants(env):
    model, ctx, ids = env
    decode_logits(ctx, ids, "tactic", 0.9)
    ev = ctx.head_eval()
    assert len(ev) == 3 * model.n_head * 5
    for e in ev:
        assert 1 <= e["oracle_tokens"] <= e["cluster_opt_tokens"] <= e["n_tokens"]
        assert e["tactic_tokens"] <= e["union_tokens"] <= e["n_tokens"]
        assert e["tactic_true_mass"] <= e["union_true_mass"] + 1e-6
        if e["tactic_true_mass"] >= e["p"]:
            assert e["tactic_tokens"] >= e["oracle_tokens"]
        if e["prune_true_mass"] >= e["p"]:
            assert e["prune_tokens"] >= e["oracle_tokens"]
        for k in ("tactic_true_mass", "quest_true_mass", "prune_true_mass", "union_true_mass"):
            assert 0.0 <= e[k] <= 1.0 + 1e-6


@pytest.mark.parametrize("selector", ["bounded", "tactic", "prune", "quest", "oracle", "cluster_opt"])
def test_p1_equals_full(env, selector):
    _, ctx, ids = env
    ref = decode_logits(ctx, ids, "full", 1.0)
    got = decode_logits(ctx, ids, selector, 1.0)
    for a, b in zip(ref, got):
        assert np.max(np.abs(a - b)) < 1e-3 * max(1.0, np.max(np.abs(a)))
    for s in ctx.head_stats():
        assert s.n_attended == s.n_tokens


def test_sparse_close_to_full(env):
    """At P=0.95 the next-token distribution stays close to full attention's."""
    from tactic_common import kl

    _, ctx, ids = env
    ref = decode_logits(ctx, ids, "full", 1.0)
    got = decode_logits(ctx, ids, "tactic", 0.95)
    assert max(kl(a, b) for a, b in zip(ref, got)) < 0.05


def test_bad_arguments_are_typed_errors(env, gemma_path):
    from tactic_common import Ctx, Model

    model, ctx, ids = env
    decode_logits(ctx, ids, "tactic", 0.9, n=1)
    with pytest.raises(InvalidArgumentError):
        ctx.set_selection("tactic", 0.0)
    with pytest.raises(InvalidArgumentError):
        ctx.set_selection("tactic", 1.5)
    from pytactic._native import check

    with pytest.raises(InvalidArgumentError):
        check(lib.tactic_set_selection(ctx.h, 99, 0.9))
    n = ffi.new("int32_t *")
    assert lib.tactic_get_head_eval(ctx.h, ffi.NULL, 0, n) == lib.TACTIC_ERR_INVALID_ARGUMENT  # cap too small
    assert n[0] == 3 * model.n_head * 5  # ... and the count needed is reported
    full = Ctx(Model(gemma_path), 64, attention="full")
    with pytest.raises(InvalidArgumentError):
        full.set_selection("tactic", 0.9)
    with pytest.raises(InvalidArgumentError):
        full.head_eval()


def test_bounded_selector_stats(env):
    """The default selector: per head, reaching P never takes fewer tokens than the exact
    oracle (computed by the debug path over every token), a head that misses P had an
    estimated total below the true one (the bound failed), scoring happens once per KV
    group, and the group's union holds every head's selection."""
    model, ctx, ids = env
    decode_logits(ctx, ids, "bounded", 0.9, n=4)
    st = ctx.head_stats()
    assert len(st) == 3 * model.n_head
    for s in st:
        assert 1 <= s.oracle_tokens <= s.oracle_union <= s.n_tokens
        assert s.n_selected <= s.n_attended <= s.n_tokens and s.n_scored <= s.n_tokens
        if s.true_mass >= 0.9:
            assert s.n_selected >= s.oracle_tokens
        else:
            assert s.est_over_true_total < 1.0 + 1e-4
    assert any(s.n_attended < s.n_tokens for s in st)


def _head_tokens(ctx, layer, head, n):
    from pytactic._native import check

    w, fl, cr = np.zeros(n, np.float32), np.zeros(n, np.uint8), np.zeros(n, np.int32)
    n_out = ffi.new("int32_t *")
    check(lib.tactic_get_head_tokens(ctx.h, layer, head, ffi.cast("float *", w.ctypes.data),
                                     ffi.cast("uint8_t *", fl.ctypes.data), ffi.cast("int32_t *", cr.ctypes.data),
                                     n, n_out))
    return w[: n_out[0]], fl[: n_out[0]], cr[: n_out[0]]


def test_head_tokens_agree_with_stats(env):
    """tactic_get_head_tokens (debug mode): per head the true weights are a softmax (sum 1),
    the kept / attended / scored flags count what head_stats reports, the kept tokens' weight
    is the head's true mass, kept ⊆ scored and ⊆ attended, and the kept tokens are the
    heaviest of the scored ones (the pruning rule: nothing scored and dropped outweighs a
    kept token). Under FULL every token carries every flag."""
    model, ctx, ids = env
    decode_logits(ctx, ids, "bounded", 0.9)
    st = ctx.head_stats()
    assert len(st) == 3 * model.n_head
    for s in st:
        w, fl, cr = _head_tokens(ctx, s.layer, s.head, s.n_tokens + 8)
        assert len(w) == s.n_tokens
        kept, att, scored = (fl & 1) > 0, (fl & 2) > 0, (fl & 4) > 0
        assert abs(float(w.astype(np.float64).sum()) - 1.0) < 1e-4 and w.min() >= 0
        assert kept.sum() == s.n_selected and att.sum() == s.n_attended and scored.sum() == s.n_scored
        assert not (kept & ~att).any() and not (kept & ~scored).any()
        assert abs(float(w[kept].astype(np.float64).sum()) - s.true_mass) < 1e-4
        dropped = scored & ~kept
        if dropped.any():
            assert w[kept].min() >= w[dropped].max() * (1 - 1e-4)
        assert ((cr >= 0) | scored).all()  # outside the clusters: always scored
    decode_logits(ctx, ids, "full", 1.0, n=1)
    for s in ctx.head_stats():
        w, fl, _ = _head_tokens(ctx, s.layer, s.head, s.n_tokens)
        assert (fl == 7).all() and abs(float(w.astype(np.float64).sum()) - 1.0) < 1e-4
    n = ffi.new("int32_t *")
    assert lib.tactic_get_head_tokens(ctx.h, 5, 0, ffi.NULL, ffi.NULL, ffi.NULL, 0, n) == lib.TACTIC_ERR_INVALID_ARGUMENT
    assert n[0] == N_PROMPT + 1
    assert lib.tactic_get_head_tokens(ctx.h, 99, 0, ffi.NULL, ffi.NULL, ffi.NULL, 0, n) == lib.TACTIC_ERR_INVALID_ARGUMENT


def test_debug_noise_control(env):
    """tactic_set_debug_noise: sigma 0 is the unperturbed path bit for bit; sigma > 0 moves
    the logits a little (KL small), reproducibly for a seed and differently across seeds."""
    from tactic_common import kl

    _, ctx, ids = env
    ref = decode_logits(ctx, ids, "full", 1.0)
    try:
        ctx.set_noise(0.0, 5)
        assert all(np.array_equal(a, b) for a, b in zip(ref, decode_logits(ctx, ids, "full", 1.0)))
        ctx.set_noise(0.01, 1)
        a1 = decode_logits(ctx, ids, "full", 1.0)
        a1b = decode_logits(ctx, ids, "full", 1.0)
        ctx.set_noise(0.01, 2)
        a2 = decode_logits(ctx, ids, "full", 1.0)
        assert all(np.array_equal(x, y) for x, y in zip(a1, a1b))
        assert not np.array_equal(a1[-1], ref[-1]) and not np.array_equal(a1[-1], a2[-1])
        assert max(kl(x, y) for x, y in zip(ref, a1)) < 0.05
        with pytest.raises(InvalidArgumentError):
            ctx.set_noise(2.0, 1)
    finally:
        ctx.set_noise(0.0)


def _long_prompt(model, n):
    import pydoc_data.topics as t

    text = "\n\n".join(t.topics.values())
    return model.tokenize(text[: n * 8])[:n]


def test_model_force_fraction_and_attended_share(gemma_path):
    """Model(tactic_force_fraction=f): every global-layer head keeps ceil(f * n) tokens, so
    the attended share of the cache per head (the union over the KV group's 4 query heads)
    lies in [f, 4f]; last_stats reports it."""
    from pytactic import Model

    with Model(gemma_path, n_ctx=2048, attention="tactic", tactic_force_fraction=0.1) as m:
        m.generate(_long_prompt(m, 1200), max_tokens=4, temperature=0)
        share = m.last_stats.tactic_attended_share
        assert share is not None and 0.1 <= share <= 0.4 + 0.01


def test_model_tactic_min_ctx(gemma_path):
    """attention="auto" runs Tactic only from tactic_min_ctx cached tokens."""
    from pytactic import Model

    for min_ctx, uses_tactic in ((10**6, False), (0, True)):
        with Model(gemma_path, n_ctx=2048, attention="auto", tactic_min_ctx=min_ctx) as m:
            m.generate(_long_prompt(m, 1200), max_tokens=2, temperature=0)
            assert (m.last_stats.tactic_attended_share is not None) == uses_tactic


@pytest.mark.parametrize("kw", [{"tactic_force_fraction": 1.5}, {"tactic_force_fraction": -0.1},
                                {"tactic_min_ctx": -1}, {"tactic_min_ctx": 1.5}])
def test_model_tactic_args_validated(gemma_path, kw):
    from pytactic import Model

    with pytest.raises(ValueError):
        Model(gemma_path, n_ctx=256, **kw)
