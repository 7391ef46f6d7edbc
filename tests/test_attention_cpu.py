"""The CPU prefill attention (the forward pass's block loop, through
tactic_bench_prefill_attention): every implementation this CPU runs (scalar, AVX2,
AVX-512 blocks) against a float64 numpy softmax-attention written from the definition,
and against each other on the same inputs; and the AVX-512 block kernel's two lane
layouts (query rows or keys in the vector lanes) held to the same bytes."""

import numpy as np
import pytest

from pytactic._native import check, ffi, lib

IMPL_NAMES = {1: "scalar", 2: "AVX2", 3: "AVX-512"}


def impl_available(impl):
    w = np.zeros(34, dtype=np.uint8)
    x = np.zeros(32, dtype=np.float32)
    out = ffi.new("float *")
    return lib.tactic_vec_dot(8, ffi.from_buffer(w), 34, ffi.cast("float *", ffi.from_buffer(x)), 32, impl,
                              out) == 0


def prefill_attention(K, V, q, pos0, window, impl):
    n_kv, D = K.shape
    n_tokens, group, _ = q.shape
    out = np.full(q.shape, np.nan, dtype=np.float32)
    check(lib.tactic_bench_prefill_attention(
        ffi.cast("uint16_t *", ffi.from_buffer(K)), ffi.cast("uint16_t *", ffi.from_buffer(V)), n_kv,
        ffi.cast("float *", ffi.from_buffer(q)), n_tokens, group, D, pos0, window, impl,
        ffi.cast("float *", ffi.from_buffer(out))))
    return out


def reference(K, V, q, pos0, window):
    Kf, Vf = K.view(np.float16).astype(np.float64), V.view(np.float16).astype(np.float64)
    out = np.empty(q.shape, dtype=np.float64)
    for t in range(q.shape[0]):
        pos = pos0 + t
        lo = max(0, pos - window + 1) if window > 0 else 0
        s = q[t].astype(np.float64) @ Kf[lo:pos + 1].T
        p = np.exp(s - s.max(axis=1, keepdims=True))
        out[t] = (p / p.sum(axis=1, keepdims=True)) @ Vf[lo:pos + 1]
    return out


CASES = [  # n_tokens, group, D, pos0, window
    (40, 4, 256, 0, 0),      # Gemma 3 270M: one KV head, 4 query heads, head_dim 256
    (37, 4, 256, 100, 32),   # sliding window, mid-sequence, a short last block
    (21, 7, 64, 5, 0),       # Qwen2.5-0.5B: 7 query heads a KV head (9 tokens a block)
    (5, 2, 128, 300, 0),     # fewer tokens than a block, keys in several tiles
    (3, 1, 48, 0, 0),        # head_dim the block kernel does not take: the per-token path
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("impl", [1, 2, 3])
def test_prefill_attention_matches_reference(case, impl):
    if not impl_available(impl):
        pytest.skip(f"this CPU cannot run the {IMPL_NAMES[impl]} kernels")
    n_tokens, group, D, pos0, window = case
    rng = np.random.default_rng(n_tokens * 1000 + D)
    n_kv = pos0 + n_tokens
    K = (rng.standard_normal((n_kv, D)) * 0.5).astype(np.float16).view(np.uint16)
    V = rng.standard_normal((n_kv, D)).astype(np.float16).view(np.uint16)
    # a scale like the model's (scores of a few units), q rounded to f16 as the forward pass does
    q = (rng.standard_normal((n_tokens, group, D)) * 2 / np.sqrt(D)).astype(np.float16).astype(np.float32)
    want = reference(K, V, q, pos0, window)
    got = prefill_attention(K, V, q, pos0, window, impl)
    # the weights V is multiplied by are rounded to f16 (as llama.cpp): ~1e-3 relative
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-3 * np.abs(want).max())
    if impl > 1:
        scalar = prefill_attention(K, V, q, pos0, window, 1)
        np.testing.assert_allclose(got, scalar, rtol=0, atol=5e-4 * np.abs(scalar).max())


def test_prefill_attention_rejects_bad_arguments():
    from pytactic.errors import InvalidArgumentError

    K = np.zeros((4, 64), dtype=np.uint16)
    q = np.zeros((8, 1, 64), dtype=np.float32)
    with pytest.raises(InvalidArgumentError, match="n_kv"):
        prefill_attention(K, K, q, 0, 0, 0)


# ---- The AVX-512 block kernel's two lane layouts ----
# A decode token (a few query rows) takes the keys-in-lanes layout, a prefill block the
# rows-in-lanes one; a token's output must be the same bytes either way, or a decode step
# would differ from the same token inside a prefill batch (test_batch_independence.py).

ROWS_IN_LANES, KEYS_IN_LANES = 1, 2


def attention_block(K, V, q, lo, hi, j_begin, j_end, layout):
    n_kv, D = K.shape
    n_tokens, group, _ = q.shape
    R = n_tokens * group
    m, l = np.full(R, np.nan, dtype=np.float32), np.full(R, np.nan, dtype=np.float32)
    acc = np.full((R, D), np.nan, dtype=np.float32)
    lo, hi = np.ascontiguousarray(lo, dtype=np.int32), np.ascontiguousarray(hi, dtype=np.int32)

    def ptr(a, t):
        return ffi.cast(t, ffi.from_buffer(a))

    check(lib.tactic_bench_attention_block(
        ptr(K, "uint16_t *"), ptr(V, "uint16_t *"), n_kv, ptr(q, "float *"), n_tokens, group, D,
        ptr(lo, "int32_t *"), ptr(hi, "int32_t *"), j_begin, j_end, layout, 1, ptr(m, "float *"),
        ptr(l, "float *"), ptr(acc, "float *"), ffi.NULL))
    return m, l, acc


def block_reference(K, V, q, lo, hi, j_begin, j_end):
    """out[t, h] = softmax attention over positions [max(lo, j_begin), min(hi, j_end)), float64."""
    Kf, Vf = K.view(np.float16).astype(np.float64), V.view(np.float16).astype(np.float64)
    out = np.zeros(q.shape, dtype=np.float64)
    for t in range(q.shape[0]):
        a, b = max(lo[t], j_begin), min(hi[t], j_end)
        if a < b:
            s = q[t].astype(np.float64) @ Kf[a:b].T
            p = np.exp(s - s.max(axis=1, keepdims=True))
            out[t] = (p / p.sum(axis=1, keepdims=True)) @ Vf[a:b]
    return out


LAYOUT_CASES = [  # D, group, n_tokens, n_kv, window (0: causal from position 0)
    (256, 4, 1, 1000, 0),    # Gemma 3 270M decode: 4 query heads of 256, keys in several tiles
    (256, 4, 2, 301, 0),     # two tokens of one block: 8 rows, two row groups
    (256, 4, 1, 777, 512),   # a sliding-window layer: the window starts mid-tile
    (128, 1, 1, 130, 0),     # one query head: 3 of 4 rows are padding
    (128, 1, 8, 517, 37),    # eight tokens of one head, each its own short window
    (64, 7, 1, 1025, 0),     # Qwen2.5-0.5B decode: 7 query heads of 64
    (64, 7, 1, 61, 0),       # fewer keys than a tile
    (64, 2, 3, 203, 100),    # 6 rows
]


@pytest.mark.parametrize("case", LAYOUT_CASES)
def test_keys_in_lanes_matches_rows_in_lanes_bytes(case):
    if not impl_available(3):
        pytest.skip("this CPU cannot run the AVX-512 kernels")
    D, group, n_tokens, n_kv, window = case
    rng = np.random.default_rng(D * 131 + group * 17 + n_kv)
    K = (rng.standard_normal((n_kv, D)) * 0.5).astype(np.float16).view(np.uint16)
    V = rng.standard_normal((n_kv, D)).astype(np.float16).view(np.uint16)
    q = (rng.standard_normal((n_tokens, group, D)) * 2 / np.sqrt(D)).astype(np.float16).astype(np.float32)
    # consecutive tokens at the end of the cache, causal (and windowed)
    hi = np.arange(n_kv - n_tokens + 1, n_kv + 1)
    lo = np.maximum(0, hi - window) if window else np.zeros(n_tokens, dtype=np.int64)
    # whole range, one chunk-like piece starting off a tile boundary, and a piece of odd length
    for j_begin, j_end in ((0, n_kv), (min(3, n_kv - 1), n_kv), (n_kv // 3, n_kv // 3 + 77)):
        j_end = min(j_end, n_kv)
        rows = attention_block(K, V, q, lo, hi, j_begin, j_end, ROWS_IN_LANES)
        keys = attention_block(K, V, q, lo, hi, j_begin, j_end, KEYS_IN_LANES)
        for name, a, b in zip("mlA", rows, keys):
            assert a.tobytes() == b.tobytes(), f"{name} differs over [{j_begin}, {j_end})"
        # and both are the attention of the definition
        R = n_tokens * group
        m, l, acc = keys
        live = l > 0
        out = np.zeros((R, D))
        out[live] = acc[live] / l[live, None]
        want = block_reference(K, V, q, lo, hi, j_begin, j_end).reshape(R, D)
        np.testing.assert_allclose(out, want, rtol=0, atol=2e-3 * np.abs(want).max())
        assert np.array_equal(live, np.abs(want).sum(axis=1) > 0)


@pytest.mark.parametrize("group,D", [(4, 256), (7, 64), (1, 128)])
def test_decode_token_matches_its_prefill_block(group, D):
    """The forward pass's prefill loop: a token alone (a decode step, keys in lanes) and
    inside a full block of tokens (rows in lanes) give the same bytes."""
    if not impl_available(3):
        pytest.skip("this CPU cannot run the AVX-512 kernels")
    rng = np.random.default_rng(group * 1000 + D)
    n_tokens, pos0, window = 40, 1500, 0
    n_kv = pos0 + n_tokens
    K = (rng.standard_normal((n_kv, D)) * 0.5).astype(np.float16).view(np.uint16)
    V = rng.standard_normal((n_kv, D)).astype(np.float16).view(np.uint16)
    q = (rng.standard_normal((n_tokens, group, D)) * 2 / np.sqrt(D)).astype(np.float16).astype(np.float32)
    for window in (0, 700):
        batch = prefill_attention(K, V, q, pos0, window, 3)
        for t in (0, 17, n_tokens - 1):
            alone = prefill_attention(K, V, np.ascontiguousarray(q[t:t + 1]), pos0 + t, window, 3)
            assert alone.tobytes() == batch[t:t + 1].tobytes(), f"token {t}, window {window}"


def test_attention_block_rejects_bad_arguments():
    from pytactic.errors import InvalidArgumentError

    if not impl_available(3):
        pytest.skip("this CPU cannot run the AVX-512 kernels")
    K = np.zeros((100, 64), dtype=np.uint16)
    q = np.zeros((3, 4, 64), dtype=np.float32)  # 12 rows: too many for keys in lanes
    with pytest.raises(InvalidArgumentError, match="rows"):
        attention_block(K, K, q, [0] * 3, [100] * 3, 0, 100, KEYS_IN_LANES)
    with pytest.raises(InvalidArgumentError, match="j_end"):
        attention_block(K, K, q, [0] * 3, [100] * 3, 0, 101, ROWS_IN_LANES)
