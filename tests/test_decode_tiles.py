"""The AVX-512 tiles of the legacy types on weights repacked at load (impl 3) against the
same tiles gathering the weights as stored (impl 0 on an AVX-512 CPU), byte for byte,
in the cases where decode takes its own route: a short last group of 1-4 blocks done
for four rows at once (Gemma's 640-wide rows: 16 + 4 blocks), rows that do not fill
the last quad, and 1-4 tokens against the same tokens inside a larger batch (which
takes the one-row route): every token's outputs must be the same bytes. The scalar
twin holds the values (tolerance of test_quant.py's test_matmul_equals_vec_dot)."""

import numpy as np
import pytest

from test_quant import dot_scale, impl_available, matmul, random_row, vec_dot

LEGACY = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]
needs_avx512 = pytest.mark.skipif(not impl_available(3), reason="this CPU has no AVX-512 VNNI: no packed tiles to test")


@needs_avx512
@pytest.mark.parametrize("name", LEGACY)
@pytest.mark.parametrize("blocks", [20, 3, 17, 36, 16, 12])  # last group of 4, 3 (alone), 1, 4, none, 12 blocks
def test_packed_decode_tiles_equal_gathering_tiles(name, blocks):
    rng = np.random.default_rng(blocks)
    n, rows = 32 * blocks, 4 * 9 + 3  # the last quad is short
    w = np.stack([random_row(name, n, rng) for _ in range(rows)])
    x = rng.standard_normal((9, n)).astype(np.float32)
    batch = matmul(name, w, x, impl=3, n_threads=1)  # 9 tokens: the one-row route
    np.testing.assert_array_equal(batch, matmul(name, w, x, impl=0, n_threads=1))
    for nt in (1, 2, 3, 4):
        for threads in (1, 2):
            got = matmul(name, w, x[:nt], impl=3, n_threads=threads)
            np.testing.assert_array_equal(got, batch[:nt], err_msg=f"{name} {blocks} blocks, {nt} tokens")
            np.testing.assert_array_equal(got, matmul(name, w, x[:nt], impl=0, n_threads=threads))
    # the values: the scalar twin's dot products, and the AVX2 path where this CPU has it
    # (other f32 orders: test_quant.py's tolerance)
    want = np.array([[vec_dot(name, w[j], x[0], 1) for j in range(rows)]])
    scale = np.array([[dot_scale(name, w[j], x[0]) for j in range(rows)]])
    assert np.all(np.abs(batch[:1] - want) <= 2e-6 * scale)
    if impl_available(2):
        assert np.all(np.abs(batch[:1] - matmul(name, w, x[:1], impl=2)) <= 4e-6 * scale)
