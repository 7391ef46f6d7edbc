"""The decode matvec on 8-bit activations (native/cuda/matvec_q8.cu) held equal to the CPU.

On the GPU, x is quantized to Q8_K / Q8_0 / Q8_1 blocks and multiplied with dp4a. The
reference is the CPU path's own arithmetic: the CPU quantizer's bytes
(tactic_bench_quantize_activation, itself checked against llama.cpp's rules in
test_quant.py) dequantized, times the numpy float64 twin of the weights. The integer
block sums are then the same on both sides, so the GPU must agree to f32 rounding
(1e-5 of the row's sum of |terms|); one activation quantized one step differently, as
the earlier f32-activation path did, is far outside that at these widths."""

import numpy as np
import pytest

from pytactic._native import check, ffi, lib
from test_cuda import TYPES, f16_at, gpu_count, ptr, random_rows, ref_dequantize, rel_err

QUANT = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"]


def cpu_activation(name, x):
    """x as the CPU quantizes it for weights of type `name`: (dequantized x [n] float64,
    per-32 correction for the Q8_1 types' stored s, or None)."""
    x = np.ascontiguousarray(x, np.float32)
    k = name.endswith("_K")
    bs = 292 if k else (36 if name in ("Q4_1", "Q5_1") else 34)
    out = np.zeros(bs * x.size // (256 if k else 32), np.uint8)
    check(lib.tactic_bench_quantize_activation(TYPES[name][0], ptr(x, "float *"), x.size, 1,
                                               ffi.from_buffer(out), out.nbytes))
    raw = out.reshape(-1, bs)
    if k:
        d = raw[:, :4].copy().view(np.float32)[:, 0].astype(np.float64)
        q = raw[:, 4:260].view(np.int8).astype(np.float64)
        return (d[:, None] * q).reshape(-1), None
    d = f16_at(raw, 0)
    q = raw[:, bs - 32:].view(np.int8).astype(np.float64)
    fix = None
    if bs == 36:  # the dot uses the stored s = f16(d * sum q), not d16 * sum q
        fix = f16_at(raw, 2) - d * q.sum(axis=1)
    return (d[:, None] * q).reshape(-1), fix


def cuda_matvec_q8(name, data, n_rows, n_cols, x, tile=0):
    y = np.full(n_rows, np.nan, np.float32)
    assert lib.tactic_cuda_set_option(b"matvec_version", 3) == 0
    assert lib.tactic_cuda_set_option(b"matvec_rows", tile) == 0  # 2: the double-tile variant
    try:
        st = lib.tactic_cuda_matvec(TYPES[name][0], data, len(data), n_rows, n_cols, ptr(x, "float *"),
                                    ptr(y, "float *"))
    finally:
        lib.tactic_cuda_set_option(b"matvec_version", 0)
        lib.tactic_cuda_set_option(b"matvec_rows", 0)
    assert st == 0, ffi.string(lib.tactic_last_error()).decode()
    return y


def activations(rng, n):
    """Blocks of very different scales, a zero block, outliers, and a tie for the largest
    magnitude (the first one sets Q8_K's sign)."""
    x = rng.standard_normal(n) * np.repeat(rng.uniform(0.01, 30, (n + 255) // 256), 256)[:n]
    if n >= 512:
        x[256:512] = 0
    x[n // 3] = 40.0
    if n >= 256:
        x[5], x[6] = 200.0, -200.0
    return x.astype(np.float32)


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="no usable CUDA GPU")
@pytest.mark.parametrize("tile", [0, 2])
@pytest.mark.parametrize("name", QUANT)
def test_matvec_q8_matches_cpu_arithmetic(name, tile):
    rng = np.random.default_rng()
    bs, ts = TYPES[name][1], TYPES[name][2]
    # widths whose rows are 16-, 8-, 4- and 2-byte aligned, one tile or several, a partial last tile
    shapes = [(1, 256), (37, 512), (130, 2816), (5, 8192), (67, 4096 + 256), (9, 768)]
    if bs == 32:
        shapes += [(11, 640), (7, 96)]
    for n_rows, n_cols in shapes:
        if n_cols % bs:
            continue
        data = random_rows(rng, name, n_rows, n_cols)
        x = activations(rng, n_cols)
        y = cuda_matvec_q8(name, data, n_rows, n_cols, x, tile)
        w = ref_dequantize(name, data, n_rows * n_cols).reshape(n_rows, n_cols)
        xq, fix = cpu_activation(name, x)
        ref = w @ xq
        if fix is not None:  # Q4_1 / Q5_1: min * (stored s - d * sum q), per block
            raw = np.frombuffer(data, np.uint8).reshape(-1, ts)
            m = f16_at(raw, 2).reshape(n_rows, -1)
            ref = ref + m @ fix
        assert rel_err(y, ref) < 1e-5, (name, n_rows, n_cols, f"row bytes {n_cols // bs * ts}")
        bound = 1e-5 * (np.abs(w) @ np.abs(xq)) + 1e-30
        assert np.all(np.abs(y - ref) <= bound), (name, n_rows, n_cols, np.max(np.abs(y - ref) / bound))
