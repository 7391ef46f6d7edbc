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


@pytest.mark.parametrize("selector", ["tactic", "prune", "quest", "oracle", "cluster_opt"])
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
