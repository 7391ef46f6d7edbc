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
from test_cuda import TYPES, f16_at, gpu_count, ptr, random_rows, ref_dequantize

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


# (kernel, matvec_rows, matvec_wait): v3 with 3 or 2 stages, v4 (rows pipelined per
# warp) with 3 or 4 stages, and v4 with one row per warp; v5 (weights straight into
# registers; v4 for the types it does not have) with 2, 1 or 4 rows per warp, blocks of one
# warp, and Q4_K/Q5_K through shared-memory tiles, each with the first chunk of Q4_K/Q5_K
# weights loaded with coherent loads before pdl_wait (wait 1, the default); and v5 with
# ld.global.nc there (wait 0) with 2, 1 rows a warp and 1-warp blocks
VARIANTS = [(3, 0, 1), (3, 2, 1), (4, 0, 1), (4, 4, 1), (4, 1, 1), (5, 0, 1), (5, 1, 1), (5, 4, 1), (5, 8, 1),
            (5, 2, 1), (5, 0, 0), (5, 1, 0), (5, 8, 0)]


def cuda_matvec_q8(name, data, n_rows, n_cols, x, tile=0, kernel=3, wait=1):
    y = np.full(n_rows, np.nan, np.float32)
    assert lib.tactic_cuda_set_option(b"matvec_version", 3) == 0
    assert lib.tactic_cuda_set_option(b"matvec_q8_kernel", kernel) == 0
    assert lib.tactic_cuda_set_option(b"matvec_rows", tile) == 0  # v3: 2 = two stages; v4: 4 = four, 1 = a row per warp
    assert lib.tactic_cuda_set_option(b"matvec_wait", wait) == 0
    try:
        st = lib.tactic_cuda_matvec(TYPES[name][0], data, len(data), n_rows, n_cols, ptr(x, "float *"),
                                    ptr(y, "float *"))
    finally:
        lib.tactic_cuda_set_option(b"matvec_version", 0)
        lib.tactic_cuda_set_option(b"matvec_rows", 0)
        lib.tactic_cuda_set_option(b"matvec_wait", 1)
        lib.tactic_cuda_set_option(b"matvec_q8_kernel", 5)
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
@pytest.mark.parametrize("kernel,tile,wait", VARIANTS)
@pytest.mark.parametrize("name", QUANT)
def test_matvec_q8_matches_cpu_arithmetic(name, kernel, tile, wait):
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
        y = cuda_matvec_q8(name, data, n_rows, n_cols, x, tile, kernel, wait)
        w = ref_dequantize(name, data, n_rows * n_cols).reshape(n_rows, n_cols)
        xq, fix = cpu_activation(name, x)
        ref = w @ xq
        if fix is not None:  # Q4_1 / Q5_1: min * (stored s - d * sum q), per block
            raw = np.frombuffer(data, np.uint8).reshape(-1, ts)
            m = f16_at(raw, 2).reshape(n_rows, -1)
            ref = ref + m @ fix
        # per row against its sum of |terms| (a relative error against the result itself
        # fails on rows whose terms cancel: seen once on the H200, Q6_K 1 x 256, v3, 4.8e-5)
        bound = 1e-5 * (np.abs(w) @ np.abs(xq)) + 1e-30
        assert np.all(np.abs(y - ref) <= bound), (name, n_rows, n_cols, np.max(np.abs(y - ref) / bound))


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="no usable CUDA GPU")
@pytest.mark.parametrize("name", QUANT)
def test_matvec_q8_wait_placement_same_bits(name):
    """The first chunk of weights loaded with coherent loads before pdl_wait (matvec_wait 1),
    on a matrix of several waves with a partial last chunk and past-the-end rows, launched
    with PDL: sampled rows against the CPU's arithmetic, and every row the same bits as with
    ld.global.nc after the wait (matvec_wait 0: the same block parts summed in the same order)."""
    rng = np.random.default_rng()
    n_rows, n_cols = 20001, 2304  # 9 blocks of 256 a row: a partial chunk; an odd row count: an empty slot
    data = random_rows(rng, name, n_rows, n_cols)
    x = activations(rng, n_cols)
    assert lib.tactic_cuda_set_option(b"pdl", 1) == 0
    y0 = cuda_matvec_q8(name, data, n_rows, n_cols, x, 0, 5, 0)
    rb = len(data) // n_rows
    y = cuda_matvec_q8(name, data, n_rows, n_cols, x, 0, 5, 1)
    for r0 in [0, 4000, 9000, 14000, n_rows - 64]:
        ref, bound = reference(name, data[r0 * rb:(r0 + 64) * rb], 64, n_cols, x)
        assert np.all(np.abs(y[r0:r0 + 64] - ref) <= bound), (name, r0)
    assert np.array_equal(y, y0), (name, int(np.sum(y != y0)))


def reference(name, data, n_rows, n_cols, x):
    """(W xq as the CPU's arithmetic gives it, the bound 1e-5 * sum |terms| per row)."""
    ts = TYPES[name][2]
    w = ref_dequantize(name, data, n_rows * n_cols).reshape(n_rows, n_cols)
    xq, fix = cpu_activation(name, x)
    ref = w @ xq
    if fix is not None:
        raw = np.frombuffer(data, np.uint8).reshape(-1, ts)
        ref = ref + f16_at(raw, 2).reshape(n_rows, -1) @ fix
    return ref, 1e-5 * (np.abs(w) @ np.abs(xq)) + 1e-30


def epilogue(name, w0, w1, n_rows, n_cols, x, epi, y0=None):
    y = np.full(n_rows, np.nan, np.float32) if y0 is None else y0.copy()
    st = lib.tactic_cuda_matvec_q8_epilogue(TYPES[name][0], w0, w1 if w1 is not None else ffi.NULL, len(w0),
                                            n_rows, n_cols, ptr(x, "float *"), epi, ptr(y, "float *"))
    assert st == 0, ffi.string(lib.tactic_last_error()).decode()
    return y


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="no usable CUDA GPU")
@pytest.mark.parametrize("kernel,wait", [(4, 1), (5, 1), (5, 0)])
@pytest.mark.parametrize("name", QUANT)
def test_matvec_q8_fused_epilogues(name, kernel, wait):
    """Decode fusion: the residual add and the gated activation (gate and up in one
    launch) in the v4 / v5 kernel's epilogue (v5 with both placements of the first weight
    loads), against float64 references of the CPU's sums."""
    assert lib.tactic_cuda_set_option(b"matvec_q8_kernel", kernel) == 0
    assert lib.tactic_cuda_set_option(b"matvec_wait", wait) == 0
    try:
        fused_epilogues(name)
    finally:
        lib.tactic_cuda_set_option(b"matvec_q8_kernel", 5)
        lib.tactic_cuda_set_option(b"matvec_wait", 1)


def fused_epilogues(name):
    rng = np.random.default_rng()
    bs = TYPES[name][1]
    for n_rows, n_cols in [(37, 512), (130, 2816), (67, 4096 + 256), (9, 768)]:
        if n_cols % bs:
            continue
        x = activations(rng, n_cols)
        w0, w1 = random_rows(rng, name, n_rows, n_cols), random_rows(rng, name, n_rows, n_cols)
        g, bg = reference(name, w0, n_rows, n_cols, x)
        u, bu = reference(name, w1, n_rows, n_cols, x)
        y = epilogue(name, w0, None, n_rows, n_cols, x, 0)
        assert np.all(np.abs(y - g) <= bg), (name, n_rows, n_cols, "plain")
        res = (rng.standard_normal(n_rows) * 10).astype(np.float32)
        y = epilogue(name, w0, None, n_rows, n_cols, x, 1, res)
        # one f32 rounding of res + sum on top of the sum's own error
        assert np.all(np.abs(y - (res + g)) <= bg + 1.2e-7 * np.abs(res + g)), (name, n_rows, n_cols, "residual")
        for epi, act in [(2, lambda v: v / (1 + np.exp(-v))),
                         (3, lambda v: 0.5 * v * (1 + np.tanh(0.7978845608028654 * v * (1 + 0.044715 * v * v))))]:
            y = epilogue(name, w0, w1, n_rows, n_cols, x, epi)
            ref = act(g) * u
            # |act'| <= 1.13 for both: the sums' bounds carried through the product, plus f32 rounding
            bound = 1.2 * bg * (np.abs(u) + bu) + (np.abs(act(g)) + 1.2 * bg) * bu + 1e-6 * np.abs(ref) + 1e-30
            assert np.all(np.abs(y - ref) <= bound), (name, n_rows, n_cols, epi, np.max(np.abs(y - ref) / bound))


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="no usable CUDA GPU")
@pytest.mark.parametrize("name", ["Q4_K", "Q6_K", "Q8_0", "Q4_1"])
def test_rms_norm_q8_matches_norm_then_cpu_quantizer(name):
    """Decode fusion: RMSNorm and the activation quantization in one kernel give the
    separate kernel's normalized row and the CPU quantizer's bytes of that row."""
    rng = np.random.default_rng()
    for n in [256, 2048, 4096]:
        x = activations(rng, n) * 0.37
        w = rng.uniform(0.5, 1.5, n).astype(np.float32)
        y, xq = np.empty(n, np.float32), np.empty(n, np.float32)
        st = lib.tactic_cuda_rms_norm_q8(TYPES[name][0], ptr(x, "float *"), ptr(w, "float *"), n, 1e-5,
                                         ptr(y, "float *"), ptr(xq, "float *"))
        assert st == 0, ffi.string(lib.tactic_last_error()).decode()
        xd = x.astype(np.float64)
        ref_y = xd / np.sqrt(np.mean(xd * xd) + 1e-5) * w
        assert np.allclose(y, ref_y, rtol=1e-5, atol=0), (name, n)
        y_sep = np.empty(n, np.float32)
        check(lib.tactic_cuda_rms_norm(ptr(x, "float *"), ptr(w, "float *"), 1, n, 1e-5, ptr(y_sep, "float *")))
        assert np.array_equal(y, y_sep), (name, n, "the fused row differs from rms_norm's")
        ref_q, _ = cpu_activation(name, y)
        assert np.all(np.abs(xq - ref_q) <= 1e-6 * np.abs(ref_q)), (name, n, "quantized differently from the CPU")
