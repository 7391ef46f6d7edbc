"""The CUDA prefill attention kernels (tactic_cuda_prefill_attention, the forward pass's
attention_prefill_dev) held to a float64 numpy twin of causal GQA sliding-window
attention written from the definition: every kernel the option "prefill_mma" selects
(0 FMA, 1 WMMA, 2 mma.sync FlashAttention-2 style, with 64 or 128 query rows a block
through "prefill_rows"), over head_dim 64/128/256, GQA
groups 1/4/8, full and windowed attention, a prompt from position 0 and a chunk whose
keys are already in the cache, row counts that are no multiple of any tile and
contexts of many key tiles.

Query row r of a KV head is (token r // group, head r % group), as the kernels map it;
the reference knows nothing of that: it loops over tokens and query heads."""

import numpy as np
import pytest

from pytactic._native import check, ffi, lib
from pytactic.errors import InvalidArgumentError, UnsupportedModelError

# name: (option prefill_mma, option prefill_rows)
VARIANTS = {"FMA": (0, 0), "WMMA": (1, 0), "FA2": (2, 0), "FA2-128rows": (2, 128)}


def gpu_count():
    return int(lib.tactic_cuda_device_count())


def ptr(a, ctype):
    return ffi.cast(ctype, ffi.from_buffer(a))


def reference(q, K, V, pos0, window):
    """out[t, h] = softmax over the keys token pos0 + t sees (positions [lo, pos0 + t],
    lo = pos0 + t - window + 1 when windowed) of q[t, h] . K[kv], weights times V[kv],
    kv = h // (n_head // n_head_kv); float64 throughout."""
    n_tokens, n_head, D = q.shape
    n_head_kv = K.shape[0]
    group = n_head // n_head_kv
    Kf, Vf = K.astype(np.float64), V.astype(np.float64)
    out = np.empty(q.shape, np.float64)
    for t in range(n_tokens):
        pos = pos0 + t
        lo = max(0, pos - window + 1) if window > 0 else 0
        for h in range(n_head):
            kv = h // group
            s = Kf[kv, lo:pos + 1] @ q[t, h].astype(np.float64)
            p = np.exp(s - s.max())
            out[t, h] = (p / p.sum()) @ Vf[kv, lo:pos + 1]
    return out


def cuda_prefill(q, K, V, pos0, window, variant):
    n_tokens, n_head, D = q.shape
    n_head_kv, n_ctx, _ = K.shape
    out = np.full(q.shape, np.nan, np.float32)
    check(lib.tactic_cuda_set_option(b"prefill_mma", VARIANTS[variant][0]))
    check(lib.tactic_cuda_set_option(b"prefill_rows", VARIANTS[variant][1]))
    try:
        check(lib.tactic_cuda_prefill_attention(
            ptr(q, "float *"), n_tokens, n_head, n_head_kv, D, ptr(K, "uint16_t *"), ptr(V, "uint16_t *"),
            n_ctx, pos0, window, ptr(out, "float *")))
    except UnsupportedModelError as e:
        # a variant bigger than this card's shared memory a block (the WMMA kernel at head_dim
        # 256, 128 rows a block on 99 KB cards): refused by name, never launched
        if "bytes of shared memory a block" not in str(e):
            raise
        pytest.skip(f"{variant} does not fit this GPU: {e}")
    finally:
        lib.tactic_cuda_set_option(b"prefill_mma", 2)
        lib.tactic_cuda_set_option(b"prefill_rows", 0)
    return out


def random_inputs(seed, n_tokens, n_head, n_head_kv, D, n_ctx):
    rng = np.random.default_rng(seed)
    K = (rng.standard_normal((n_head_kv, n_ctx, D)) * 0.5).astype(np.float16)
    V = rng.standard_normal((n_head_kv, n_ctx, D)).astype(np.float16)
    # scores of a few units as in a model; q rounded to f16, as the forward pass gives it
    q = (rng.standard_normal((n_tokens, n_head, D)) * 3 / np.sqrt(D)).astype(np.float16).astype(np.float32)
    return q, K, V


# (n_tokens, pos0, window): row counts no multiple of the 64-row block or of a 32/64-key
# tile; a chunk at pos0 > 0 over several tiles of cached keys; windows shorter than the
# chunk (rows whose first tiles are all masked), crossing tile edges, and longer than the
# context (no effect).
POSITIONS = [
    (77, 0, 0),
    (45, 203, 0),
    (77, 0, 24),
    (45, 203, 100),
    (30, 150, 1000),
]


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="no usable CUDA GPU")
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("D", [64, 128, 256])
@pytest.mark.parametrize("group", [1, 4, 8])
@pytest.mark.parametrize("n_tokens,pos0,window", POSITIONS)
def test_prefill_attention_matches_reference(variant, D, group, n_tokens, pos0, window):
    n_head_kv = 2
    n_head = n_head_kv * group
    # n_ctx beyond pos0 + n_tokens: slots past the chunk hold NaN, which no kernel may read
    n_ctx = pos0 + n_tokens + 19
    q, K, V = random_inputs(1000 * D + 10 * group + n_tokens + pos0, n_tokens, n_head, n_head_kv, D, n_ctx)
    K[:, pos0 + n_tokens:] = np.nan
    V[:, pos0 + n_tokens:] = np.nan
    want = reference(q, K, V, pos0, window)
    got = cuda_prefill(q, K, V, pos0, window, variant)
    assert np.all(np.isfinite(got)), "an output element is NaN/inf (not written, or a masked NaN read)"
    # the tensor-core kernels round the softmax weights to f16 (as llama.cpp): ~1e-3 relative
    tol = 2e-5 if variant == "FMA" else 2e-3
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * np.abs(want).max())


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="no usable CUDA GPU")
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_prefill_attention_8b_shape(variant):
    """The Llama-3.1-8B shape (32 query heads, 8 KV heads, head_dim 128), 130 tokens after
    1,100 cached ones: many blocks and tiles, every head of the reference."""
    n_tokens, pos0 = 130, 1100
    q, K, V = random_inputs(8, n_tokens, 32, 8, 128, pos0 + n_tokens)
    want = reference(q, K, V, pos0, 0)
    got = cuda_prefill(q, K, V, pos0, 0, variant)
    tol = 2e-5 if variant == "FMA" else 2e-3
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * np.abs(want).max())


def test_prefill_attention_rejects_bad_arguments():
    """Checked before any device work, so this runs with or without a GPU."""
    q, K, V = random_inputs(0, 8, 4, 2, 64, 10)

    def call(n_tokens=8, n_head=4, n_head_kv=2, n_ctx=10, pos0=0, window=0):
        out = np.zeros(q.shape, np.float32)
        check(lib.tactic_cuda_prefill_attention(
            ptr(q, "float *"), n_tokens, n_head, n_head_kv, 64, ptr(K, "uint16_t *"), ptr(V, "uint16_t *"),
            n_ctx, pos0, window, ptr(out, "float *")))

    with pytest.raises(InvalidArgumentError, match="pos0 \\+ n_tokens <= n_ctx"):
        call(pos0=3)
    with pytest.raises(InvalidArgumentError, match="multiple of n_head_kv"):
        call(n_head=3)
    with pytest.raises(InvalidArgumentError, match="window >= 0"):
        call(window=-1)


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="no usable CUDA GPU")
def test_prefill_mma_option_range():
    with pytest.raises(InvalidArgumentError, match="prefill_mma"):
        check(lib.tactic_cuda_set_option(b"prefill_mma", 3))
