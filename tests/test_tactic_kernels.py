"""Tactic's candidate scoring on the CPU (the bounded selector scores most keys of a KV
group for all its query heads): the AVX-512 keys-in-lanes kernel gives the AVX2 kernel's
bytes key by key, so the selection does not change with the instruction set, and both
are q.k within rounding of a float64 numpy twin."""

import numpy as np
import pytest

from pytactic._native import check, ffi, lib


def tactic_dots(Q, keys, impl):
    g, D = Q.shape
    n = keys.shape[0]
    out = np.full((n, g), np.nan, dtype=np.float32)
    rc = lib.tactic_bench_tactic_dots(ffi.cast("float *", ffi.from_buffer(Q)), g,
                                      ffi.cast("uint16_t *", ffi.from_buffer(keys)), n, D, impl,
                                      ffi.cast("float *", ffi.from_buffer(out)))
    if rc == lib.TACTIC_ERR_UNSUPPORTED:
        pytest.skip(f"this CPU cannot run kernel implementation {impl}")
    check(rc)
    return out


@pytest.mark.parametrize("g,D,n", [(4, 256, 1000), (4, 256, 3), (1, 128, 77), (7, 64, 129), (16, 64, 40),
                                   (5, 48, 33)])
def test_avx512_scores_equal_avx2_bytes(g, D, n):
    rng = np.random.default_rng(g * 1000 + D + n)
    Q = (rng.standard_normal((g, D)) * 2 / np.sqrt(D)).astype(np.float32)
    keys = (rng.standard_normal((n, D)) * 0.7).astype(np.float16).view(np.uint16)
    want = Q.astype(np.float64) @ keys.view(np.float16).astype(np.float64).T
    avx2 = tactic_dots(Q, keys, 2)
    np.testing.assert_allclose(avx2, want.T, rtol=0, atol=1e-5 * np.abs(want).max())
    avx512 = tactic_dots(Q, keys, 3)
    assert avx512.tobytes() == avx2.tobytes()


def test_avx512_scores_reject_odd_head_dim():
    from pytactic.errors import InvalidArgumentError

    Q = np.zeros((4, 40), dtype=np.float32)
    keys = np.zeros((8, 40), dtype=np.uint16)
    with pytest.raises(InvalidArgumentError, match="head_dim"):
        tactic_dots(Q, keys, 3)
