"""The CPU prefill attention (the forward pass's block loop, through
tactic_bench_prefill_attention): every implementation this CPU runs (scalar, AVX2,
AVX-512 blocks) against a float64 numpy softmax-attention written from the definition,
and against each other on the same inputs."""

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
