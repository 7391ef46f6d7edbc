"""The CUDA backend's kernels held equal to their CPU twins on fresh random inputs.

The twins are numpy float64 references written from FORMATS.md §2 (block layouts)
and the CPU ops (cpu/ops.cpp); the block reference is itself checked against the
gguf package, and against the library's tactic_dequantize when that is built in.
GPU tests are marked `gpu` and skipped where no GPU is usable; the rest check that
the library loads and answers cleanly without one."""

import math

import numpy as np
import pytest

from pytactic._native import check, ffi, lib

TYPES = {  # name: (id, elements per block, bytes per block, offsets of f16 scale fields)
    "F32": (0, 1, 4, ()),
    "F16": (1, 1, 2, ()),
    "BF16": (30, 1, 2, ()),
    "Q4_0": (2, 32, 18, (0,)),
    "Q4_1": (3, 32, 20, (0, 2)),
    "Q5_0": (6, 32, 22, (0,)),
    "Q5_1": (7, 32, 24, (0, 2)),
    "Q8_0": (8, 32, 34, (0,)),
    "Q4_K": (12, 256, 144, (0, 2)),
    "Q5_K": (13, 256, 176, (0, 2)),
    "Q6_K": (14, 256, 210, (208,)),
}
TACTIC_ERR_INVALID_ARGUMENT = 1
TACTIC_ERR_UNSUPPORTED = 4


def gpu_count():
    return int(lib.tactic_cuda_device_count())


# ---- random inputs ----------------------------------------------------------------


def random_rows(rng, name, n_rows, n_per_row):
    """Random rows of a type: random bytes, with every f16 scale set to a finite value
    (any bit pattern of the quants is a valid block)."""
    tid, bs, ts, scale_offs = TYPES[name]
    n = n_rows * n_per_row
    if name == "F32":
        return rng.standard_normal(n).astype(np.float32).tobytes()
    if name == "F16":
        return rng.standard_normal(n).astype(np.float16).tobytes()
    if name == "BF16":
        f = rng.standard_normal(n).astype(np.float32)
        return (f.view(np.uint32) >> 16).astype(np.uint16).tobytes()
    nb = n // bs
    raw = rng.integers(0, 256, size=(nb, ts), dtype=np.uint8)
    for off in scale_offs:
        d = (rng.uniform(-1.0, 1.0, nb) * 0.05).astype(np.float16)
        raw[:, off : off + 2] = d.view(np.uint8).reshape(nb, 2)
    return raw.tobytes()


def f16_at(raw, off):
    return raw[:, off : off + 2].copy().view(np.float16)[:, 0].astype(np.float64)


def k_scale_min(s):
    """6-bit scales and mins of the 8 sub-blocks from the 12 packed bytes: [nb, 8] each."""
    s = s.astype(np.int64)
    sc = np.empty((s.shape[0], 8), np.int64)
    mn = np.empty_like(sc)
    for j in range(8):
        if j < 4:
            sc[:, j] = s[:, j] & 63
            mn[:, j] = s[:, j + 4] & 63
        else:
            sc[:, j] = (s[:, j + 4] & 15) | ((s[:, j - 4] >> 6) << 4)
            mn[:, j] = (s[:, j + 4] >> 4) | ((s[:, j] >> 6) << 4)
    return sc, mn


def ref_dequantize(name, data, n):
    """The numpy twin of dequantization (FORMATS.md §2.2), in float64."""
    tid, bs, ts, _ = TYPES[name]
    buf = np.frombuffer(data, dtype=np.uint8)
    if name == "F32":
        return buf.view(np.float32)[:n].astype(np.float64)
    if name == "F16":
        return buf.view(np.float16)[:n].astype(np.float64)
    if name == "BF16":
        return (buf.view(np.uint16)[:n].astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    nb = n // bs
    raw = buf[: nb * ts].reshape(nb, ts)
    if name in ("Q4_0", "Q4_1", "Q5_0", "Q5_1"):
        d = f16_at(raw, 0)
        has_m = name in ("Q4_1", "Q5_1")
        five = name in ("Q5_0", "Q5_1")
        qh_off = 4 if has_m else 2
        qs = raw[:, qh_off + (4 if five else 0) :][:, :16].astype(np.int64)
        q = np.concatenate([qs & 15, qs >> 4], axis=1)
        if five:
            h = raw[:, qh_off : qh_off + 4].copy().view(np.uint32)[:, 0].astype(np.int64)
            q |= ((h[:, None] >> np.arange(32)) & 1) << 4
        if has_m:
            y = d[:, None] * q + f16_at(raw, 2)[:, None]
        else:
            y = d[:, None] * (q - (16 if five else 8))
    elif name == "Q8_0":
        y = f16_at(raw, 0)[:, None] * raw[:, 2:34].view(np.int8).astype(np.float64)
    elif name in ("Q4_K", "Q5_K"):
        d, dmin = f16_at(raw, 0), f16_at(raw, 2)
        sc, mn = k_scale_min(raw[:, 4:16])
        qs = raw[:, 48 if name == "Q5_K" else 16 :][:, :128].astype(np.int64)
        y = np.empty((nb, 256))
        for c in range(4):
            lo, hi = qs[:, 32 * c : 32 * c + 32] & 15, qs[:, 32 * c : 32 * c + 32] >> 4
            if name == "Q5_K":
                qh = raw[:, 16:48].astype(np.int64)
                lo = lo | (((qh >> (2 * c)) & 1) << 4)
                hi = hi | (((qh >> (2 * c + 1)) & 1) << 4)
            y[:, 64 * c : 64 * c + 32] = (d * sc[:, 2 * c])[:, None] * lo - (dmin * mn[:, 2 * c])[:, None]
            y[:, 64 * c + 32 : 64 * c + 64] = (d * sc[:, 2 * c + 1])[:, None] * hi - (dmin * mn[:, 2 * c + 1])[:, None]
    elif name == "Q6_K":
        ql, qh = raw[:, :128].astype(np.int64), raw[:, 128:192].astype(np.int64)
        sc = raw[:, 192:208].view(np.int8).astype(np.float64)
        d = f16_at(raw, 208)
        y = np.empty((nb, 256))
        for h in range(2):
            for k in range(4):
                byte = ql[:, 64 * h + 32 * (k & 1) : 64 * h + 32 * (k & 1) + 32]
                lo = byte & 15 if k < 2 else byte >> 4
                hi = (qh[:, 32 * h : 32 * h + 32] >> (2 * k)) & 3
                e0 = 128 * h + 32 * k
                s = sc[:, e0 // 16 + np.arange(32) // 16]
                y[:, e0 : e0 + 32] = d[:, None] * s * ((lo | (hi << 4)) - 32)
    else:
        raise ValueError(name)
    return y.reshape(-1)


def rel_err(out, ref):
    out = np.asarray(out, np.float64)
    assert np.all(np.isfinite(out)), "non-finite output (an element was not written?)"
    den = np.linalg.norm(ref)
    return np.linalg.norm(out - ref) / (den if den > 0 else 1.0)


def ptr(a, ctype):
    return ffi.cast(ctype, ffi.from_buffer(a))


# ---- without a GPU -----------------------------------------------------------------


def test_device_count_is_safe():
    n = gpu_count()
    assert n >= 0
    assert gpu_count() == n  # stable across calls


def test_calls_report_unsupported_without_a_gpu():
    if gpu_count() > 0:
        pytest.skip("a GPU is present")
    x = np.ones(32, np.float32)
    y = np.zeros(1, np.float32)
    st = lib.tactic_cuda_matvec(0, ptr(x, "void *"), x.nbytes, 1, 32, ptr(x, "float *"), ptr(y, "float *"))
    assert st == TACTIC_ERR_UNSUPPORTED
    assert ffi.string(lib.tactic_last_error()).decode()
    buf = ffi.new("char[64]")
    assert lib.tactic_cuda_device_name(0, buf, 64) != 0


@pytest.mark.parametrize("name", [n for n in TYPES if n not in ("F32", "F16", "BF16")])
def test_reference_dequantize_matches_gguf(name):
    """The numpy twin agrees with the gguf package's dequantizer."""
    quants = pytest.importorskip("gguf.quants")
    import gguf

    rng = np.random.default_rng()
    n = 4 * TYPES[name][1]
    data = random_rows(rng, name, 1, n)
    qt = getattr(gguf.GGMLQuantizationType, name)
    want = quants.dequantize(np.frombuffer(data, np.uint8).reshape(1, -1), qt).reshape(-1)
    np.testing.assert_allclose(ref_dequantize(name, data, n), want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", list(TYPES))
def test_reference_dequantize_matches_library(name):
    """The numpy twin agrees with the library's CPU tactic_dequantize (when built in), so
    GPU == numpy twin == CPU runtime."""
    rng = np.random.default_rng()
    n = 4 * 256
    data = random_rows(rng, name, 1, n)
    cpu = cpu_dequantize(name, data, n)
    ref = ref_dequantize(name, data, n)
    np.testing.assert_allclose(cpu, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())


# ---- on the GPU ----------------------------------------------------------------------


def cuda_dequantize(name, data, n_rows, n_per_row):
    out = np.empty(n_rows * n_per_row, np.float32)
    st = lib.tactic_cuda_dequantize(TYPES[name][0], data, len(data), n_rows, n_per_row, ptr(out, "float *"))
    assert st == 0, ffi.string(lib.tactic_last_error()).decode()
    return out


def cuda_matvec(name, data, n_rows, n_cols, x):
    y = np.empty(n_rows, np.float32)
    st = lib.tactic_cuda_matvec(TYPES[name][0], data, len(data), n_rows, n_cols, ptr(x, "float *"), ptr(y, "float *"))
    assert st == 0, ffi.string(lib.tactic_last_error()).decode()
    return y


def cpu_dequantize(name, data, n):
    """The library's CPU tactic_dequantize; a failing call fails the test."""
    out = np.empty(n, np.float32)
    check(lib.tactic_dequantize(TYPES[name][0], data, len(data), n, ptr(out, "float *")))
    return out


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="no usable CUDA GPU")
@pytest.mark.parametrize("name", list(TYPES))
def test_dequantize_matches_reference(name):
    rng = np.random.default_rng()
    bs = TYPES[name][1]
    for n_rows, n_per_row in ((3, 256 * 3), (17, 512), (1, 256)):
        if n_per_row % bs:
            continue
        data = random_rows(rng, name, n_rows, n_per_row)
        out = cuda_dequantize(name, data, n_rows, n_per_row)
        ref = ref_dequantize(name, data, n_rows * n_per_row)
        assert np.all(np.isfinite(out))
        np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())
        cpu = cpu_dequantize(name, data, n_rows * n_per_row)
        if cpu is not None:
            np.testing.assert_allclose(out, cpu, rtol=1e-6, atol=1e-6 * np.abs(ref).max())


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="no usable CUDA GPU")
@pytest.mark.parametrize("name", list(TYPES))
@pytest.mark.parametrize("version,rows_per_warp", [(0, 0), (1, 1), (1, 2), (1, 4), (1, 8), (2, 1), (2, 2), (2, 4)])
def test_matvec_matches_reference(name, version, rows_per_warp):
    rng = np.random.default_rng()
    bs = TYPES[name][1]
    assert lib.tactic_cuda_set_option(b"matvec_rows", rows_per_warp) == 0
    assert lib.tactic_cuda_set_option(b"matvec_version", version) == 0
    try:
        shapes = [(1, 256), (37, 512), (130, 2816), (5, 8192)]
        if bs == 1:
            shapes.append((9, 100))  # float rows not a multiple of 8: the one-element path
        for n_rows, n_cols in shapes:
            data = random_rows(rng, name, n_rows, n_cols)
            x = rng.standard_normal(n_cols).astype(np.float32)
            y = cuda_matvec(name, data, n_rows, n_cols, x)
            w = ref_dequantize(name, data, n_rows * n_cols).reshape(n_rows, n_cols)
            ref = w @ x.astype(np.float64)
            assert rel_err(y, ref) < 1e-5 or n_rows == 1, (name, n_rows, n_cols)
            # per row, against the sum of |terms| (a single dot can cancel to near 0)
            bound = 1e-5 * (np.abs(w) @ np.abs(x.astype(np.float64)))
            assert np.all(np.abs(y - ref) <= bound), (name, n_rows, n_cols)
    finally:
        lib.tactic_cuda_set_option(b"matvec_rows", 0)
        lib.tactic_cuda_set_option(b"matvec_version", 0)


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="no usable CUDA GPU")
def test_matvec_rejects_bad_arguments():
    x = np.ones(256, np.float32)
    y = np.empty(4, np.float32)
    w = bytes(144 * 3)  # three Q4_K rows, four asked for
    assert lib.tactic_cuda_matvec(12, w, len(w), 4, 256, ptr(x, "float *"), ptr(y, "float *")) == TACTIC_ERR_INVALID_ARGUMENT
    assert lib.tactic_cuda_matvec(12, w, len(w), 1, 100, ptr(x, "float *"), ptr(y, "float *")) == TACTIC_ERR_INVALID_ARGUMENT
    assert lib.tactic_cuda_matvec(10, w, len(w), 1, 256, ptr(x, "float *"), ptr(y, "float *")) == TACTIC_ERR_UNSUPPORTED


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="no usable CUDA GPU")
def test_device_name():
    buf = ffi.new("char[256]")
    assert lib.tactic_cuda_device_name(0, buf, 256) == 0
    assert len(ffi.string(buf)) > 0


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="no usable CUDA GPU")
@pytest.mark.parametrize("with_weight", [True, False])
def test_rms_norm_matches_reference(with_weight):
    rng = np.random.default_rng()
    for n_rows, n in ((1, 640), (7, 2048), (3, 333)):
        x = (rng.standard_normal((n_rows, n)) * 3).astype(np.float32)
        w = rng.standard_normal(n).astype(np.float32)
        y = np.empty_like(x)
        st = lib.tactic_cuda_rms_norm(ptr(x, "float *"), ptr(w, "float *") if with_weight else ffi.NULL,
                                      n_rows, n, 1e-6, ptr(y, "float *"))
        assert st == 0
        xd = x.astype(np.float64)
        ref = xd / np.sqrt((xd * xd).mean(axis=1, keepdims=True) + 1e-6)
        if with_weight:
            ref = ref * w
        assert rel_err(y, ref) < 1e-6


def ref_rope(x, pos, neox, n_rot, base, freq_scale, freq_factors, yarn, attn_factor, orig_ctx):
    """numpy twin of rope_cos_sin + rope_apply (cpu/ops.cpp), in float64."""
    half = n_rot // 2
    i = np.arange(half)
    theta_extrap = pos[:, None].astype(np.float64) * base ** (-2.0 * i / n_rot)[None, :]
    if freq_factors is not None:
        theta_extrap = theta_extrap / freq_factors[None, :]
    theta = freq_scale * theta_extrap
    mscale = attn_factor
    if yarn:
        def corr(r):
            return n_rot * math.log(orig_ctx / (r * 2 * math.pi)) / (2 * math.log(base))

        low = max(0.0, math.floor(corr(32.0)))
        high = min(n_rot - 1.0, math.ceil(corr(1.0)))
        ramp = 1.0 - np.clip((i - low) / max(0.001, high - low), 0.0, 1.0)
        theta = theta * (1 - ramp) + theta_extrap * ramp
        mscale *= 1.0 + 0.1 * math.log(1.0 / freq_scale)
    cs, sn = np.cos(theta)[:, None, :] * mscale, np.sin(theta)[:, None, :] * mscale
    y = x.astype(np.float64).copy()
    if neox:
        a, b = y[..., :half].copy(), y[..., half:n_rot].copy()
        y[..., :half], y[..., half:n_rot] = a * cs - b * sn, a * sn + b * cs
    else:
        a, b = y[..., 0:n_rot:2].copy(), y[..., 1:n_rot:2].copy()
        y[..., 0:n_rot:2], y[..., 1:n_rot:2] = a * cs - b * sn, a * sn + b * cs
    return y


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="no usable CUDA GPU")
@pytest.mark.parametrize("neox", [0, 1])
@pytest.mark.parametrize("variant", ["plain", "partial", "freq_factors", "yarn"])
def test_rope_matches_reference(neox, variant):
    rng = np.random.default_rng()
    n_tokens, n_head, head_dim = 5, 3, 128
    n_rot = 64 if variant == "partial" else head_dim
    x = rng.standard_normal((n_tokens, n_head, head_dim)).astype(np.float32)
    pos = rng.integers(0, 2048, n_tokens).astype(np.int32)
    ff = rng.uniform(1.0, 8.0, n_rot // 2).astype(np.float32) if variant == "freq_factors" else None
    p = ffi.new("tactic_cuda_rope_params *")
    p.neox, p.n_rot, p.base, p.attn_factor = neox, n_rot, 10000.0, 1.0
    p.freq_scale = 0.25 if variant == "yarn" else 1.0
    p.freq_factors = ptr(ff, "float *") if ff is not None else ffi.NULL
    p.yarn, p.yarn_orig_ctx = (1, 4096) if variant == "yarn" else (0, 0)
    y = x.copy()
    assert lib.tactic_cuda_rope(ptr(y, "float *"), n_tokens, n_head, head_dim, ptr(pos, "int32_t *"), p) == 0
    ref = ref_rope(x, pos, neox, n_rot, 10000.0, p.freq_scale, ff, variant == "yarn", 1.0, 4096)
    # f32 angles of positions up to 2048: ~1e-4 rad of rounding in the fastest pair
    assert rel_err(y, ref) < 1e-4
    np.testing.assert_array_equal(y[..., n_rot:], x[..., n_rot:])


# ---- attention ---------------------------------------------------------------------


def ref_attention(q, K, V, n_head_kv, lists, scale):
    """numpy softmax attention in float64; lists[g] = the token rows of KV head g."""
    n_head, D = q.shape
    group = n_head // n_head_kv
    out = np.zeros((n_head, D))
    for g in range(n_head_kv):
        rows = lists[g]
        if len(rows) == 0:
            continue
        k = K[g, rows].astype(np.float64)
        v = V[g, rows].astype(np.float64)
        qg = q[g * group : (g + 1) * group].astype(np.float64)
        s = scale * (qg @ k.T)  # [group, rows]
        p = np.exp(s - s.max(axis=1, keepdims=True))
        out[g * group : (g + 1) * group] = (p / p.sum(axis=1, keepdims=True)) @ v
    return out


def random_cache(rng, n_head_kv, n_ctx, D):
    K = rng.standard_normal((n_head_kv, n_ctx, D)).astype(np.float16)
    V = rng.standard_normal((n_head_kv, n_ctx, D)).astype(np.float16)
    return K, V


# The library's default decode attention kernel (Options::attn_kernel in
# native/cuda/cuda_util.cuh): restored after a test picks one.
ATTN_KERNEL_DEFAULT = 32


def cuda_attention(q, K, V, lo, n, scale, kernel=0):
    """The range attention with attn_kernel `kernel` (0: the FMA kernel, ~1e-7 of the twin)."""
    n_head, D = q.shape
    n_head_kv, n_ctx, _ = K.shape
    out = np.empty((n_head, D), np.float32)
    assert lib.tactic_cuda_set_option(b"attn_kernel", kernel) == 0
    try:
        st = lib.tactic_cuda_attention(ptr(q, "float *"), n_head, n_head_kv, D, ptr(K, "uint16_t *"),
                                       ptr(V, "uint16_t *"), n_ctx, lo, n, scale, ptr(out, "float *"))
    finally:
        lib.tactic_cuda_set_option(b"attn_kernel", ATTN_KERNEL_DEFAULT)
    assert st == 0, ffi.string(lib.tactic_last_error()).decode()
    return out


def cuda_attention_indexed(q, K, V, lists, scale):
    n_head, D = q.shape
    n_head_kv, n_ctx, _ = K.shape
    idx = np.concatenate([np.asarray(l, np.int32) for l in lists] + [np.zeros(0, np.int32)])
    offsets = np.zeros(n_head_kv + 1, np.int64)
    offsets[1:] = np.cumsum([len(l) for l in lists])
    out = np.empty((n_head, D), np.float32)
    st = lib.tactic_cuda_attention_indexed(ptr(q, "float *"), n_head, n_head_kv, D, ptr(K, "uint16_t *"),
                                           ptr(V, "uint16_t *"), n_ctx, ptr(idx, "int32_t *") if len(idx) else ffi.NULL,
                                           ptr(offsets, "int64_t *"), scale, ptr(out, "float *"))
    assert st == 0, ffi.string(lib.tactic_last_error()).decode()
    return out


ATTN_SHAPES = [  # n_head, n_head_kv, head_dim
    (4, 1, 256),  # Gemma 3 270M
    (8, 8, 64),
    (32, 8, 128),  # Llama 3 8B
    (12, 2, 128),  # a group of 6: two head pieces
    (3, 3, 128),
]


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="no usable CUDA GPU")
@pytest.mark.parametrize("shape", ATTN_SHAPES)
@pytest.mark.parametrize("n_ctx,lo,n", [(40, 0, 1), (300, 0, 300), (5000, 123, 4567)])
def test_attention_matches_reference(shape, n_ctx, lo, n):
    rng = np.random.default_rng()
    n_head, n_head_kv, D = shape
    K, V = random_cache(rng, n_head_kv, n_ctx, D)
    q = (rng.standard_normal((n_head, D)) * 2).astype(np.float32)
    scale = 1.0 / math.sqrt(D)
    out = cuda_attention(q, K, V, lo, n, scale)
    ref = ref_attention(q, K, V, n_head_kv, [np.arange(lo, n)] * n_head_kv, scale)
    assert rel_err(out, ref) < 1e-5


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="no usable CUDA GPU")
@pytest.mark.parametrize("splits", [1, 3, 64])
@pytest.mark.parametrize("prefetch", [0, 1])
def test_attention_split_counts_agree(splits, prefetch):
    """The split-K merge gives the same answer however the tokens are cut (and with
    or without the L2 prefetch)."""
    rng = np.random.default_rng()
    K, V = random_cache(rng, 2, 3000, 128)
    q = rng.standard_normal((8, 128)).astype(np.float32)
    ref = ref_attention(q, K, V, 2, [np.arange(3000)] * 2, 0.1)
    assert lib.tactic_cuda_set_option(b"attn_splits", splits) == 0
    assert lib.tactic_cuda_set_option(b"attn_prefetch", prefetch) == 0
    try:
        out = cuda_attention(q, K, V, 0, 3000, 0.1)
    finally:
        lib.tactic_cuda_set_option(b"attn_splits", 0)
        lib.tactic_cuda_set_option(b"attn_prefetch", 0)
    assert rel_err(out, ref) < 1e-5


# The tensor-core decode kernel (option attn_kernel=1) rounds q * scale and the softmax
# weights p to f16 before the products (f32 accumulation), as FlashAttention does: its
# error against the float64 twin is ~1e-4 relative, not the FMA kernel's ~1e-7.
MMA_TOL = 2e-3


def cuda_attention_mma(q, K, V, lo, n, scale, splits=0, kernel=1):
    """attn_kernel 1 (splits merged by a second kernel) or 2 (by each head's last block)."""
    assert lib.tactic_cuda_set_option(b"attn_splits", splits) == 0
    try:
        return cuda_attention(q, K, V, lo, n, scale, kernel)
    finally:
        lib.tactic_cuda_set_option(b"attn_splits", 0)


MMA_SHAPES = ATTN_SHAPES + [(8, 2, 64), (16, 2, 256), (40, 4, 128)]  # groups of 4, 8 and 10 (two head pieces)
# attn_kernel 1 and 2, and 3-11, 19, 20, 29-31: the variants (how K/V are copied in:
# cp.async with L2 prefetch hints or TMA bulk rows / row pairs on sm_90, 19 and 20 128-key
# K and V tiles copied one after the other by TMA tensor copies; how the splits are merged;
# which chunks a split takes, 29-31 20 and 19 with the tail's 128-key tiles claimed from a
# counter per head; 32 the default: 20 below 32,768 keys, 30 from there), each held to the
# same float64 twin. Ids k1..k31 so that a run can pick
# some with -k. 12-18 and 21-28 are variants removed after measurement
# (docs/results/at_s13.md): the option rejects them.
MMA_KERNELS = list(range(1, 12)) + [19, 20, 29, 30, 31, 32]
ATTN_KERNELS_REMOVED = list(range(12, 19)) + list(range(21, 29))
# The split-edge sweep for the kernels whose split, copy or merge code differs (3-6 are
# kernel 1 or 2 with an L2 hint on the same copies; 7 is 8 with kernel 1's merge).
MMA_KERNELS_EDGES = [1, 2, 8, 9, 10, 11, 19, 20, 29, 30, 31, 32]


def test_attn_kernel_option_values():
    """The option accepts 0-11, 19, 20, 29-32 and rejects the removed variants' numbers and
    values out of range (no GPU needed: the options are host-side)."""
    st = lib.tactic_cuda_set_option(b"attn_kernel", ATTN_KERNEL_DEFAULT)
    if st == TACTIC_ERR_UNSUPPORTED:
        pytest.skip("library built without CUDA (the options are the CUDA backend's)")
    assert st == 0
    try:
        for k in [0] + MMA_KERNELS:
            assert lib.tactic_cuda_set_option(b"attn_kernel", k) == 0, k
        for k in ATTN_KERNELS_REMOVED + [-1, 33, 1000]:
            assert lib.tactic_cuda_set_option(b"attn_kernel", k) == TACTIC_ERR_INVALID_ARGUMENT, k
    finally:
        assert lib.tactic_cuda_set_option(b"attn_kernel", ATTN_KERNEL_DEFAULT) == 0


def kernel_id(k):
    return f"k{k}"


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="no usable CUDA GPU")
@pytest.mark.parametrize("kernel", MMA_KERNELS, ids=kernel_id)
@pytest.mark.parametrize("shape", MMA_SHAPES)
@pytest.mark.parametrize("n_ctx,lo,n", [(40, 0, 1), (40, 0, 17), (300, 0, 300), (5000, 123, 4567), (9000, 8488, 9000)])
def test_attention_mma_matches_reference(shape, n_ctx, lo, n, kernel):
    """attn_kernel=1 over [lo, n): single tokens, a part chunk, many splits, a window
    (lo > 0, as a sliding window of 512 reads)."""
    rng = np.random.default_rng()
    n_head, n_head_kv, D = shape
    K, V = random_cache(rng, n_head_kv, n_ctx, D)
    q = (rng.standard_normal((n_head, D)) * 2).astype(np.float32)
    scale = 1.0 / math.sqrt(D)
    out = cuda_attention_mma(q, K, V, lo, n, scale, kernel=kernel)
    ref = ref_attention(q, K, V, n_head_kv, [np.arange(lo, n)] * n_head_kv, scale)
    assert rel_err(out, ref) < MMA_TOL


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="no usable CUDA GPU")
@pytest.mark.parametrize("D", [64, 128, 256])
@pytest.mark.parametrize("n", [1, 15, 16, 17, 63, 64, 65, 1023, 1024, 1025, 4097])
@pytest.mark.parametrize("splits", [0, 7, 64])
@pytest.mark.parametrize("kernel", MMA_KERNELS_EDGES, ids=kernel_id)
def test_attention_mma_split_boundaries(D, n, splits, kernel):
    """Lengths around the 16-token chunk, the 64-token block step and the split edges,
    with automatic and forced split counts (empty splits included)."""
    rng = np.random.default_rng(n * 7 + D)
    n_head, n_head_kv = 32, 8
    K, V = random_cache(rng, n_head_kv, n, D)
    q = (rng.standard_normal((n_head, D)) * 2).astype(np.float32)
    scale = 1.0 / math.sqrt(D)
    out = cuda_attention_mma(q, K, V, 0, n, scale, splits, kernel)
    ref = ref_attention(q, K, V, n_head_kv, [np.arange(n)] * n_head_kv, scale)
    assert rel_err(out, ref) < MMA_TOL


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="no usable CUDA GPU")
@pytest.mark.parametrize("kernel", MMA_KERNELS, ids=kernel_id)
def test_attention_mma_peaked_scores(kernel):
    """One key far above the rest (softmax nearly one-hot, late in the range): the
    running max is rescaled correctly across chunks, warps and splits."""
    rng = np.random.default_rng(5)
    n_head, n_head_kv, D, n = 32, 8, 128, 3000
    K, V = random_cache(rng, n_head_kv, n, D)
    q = rng.standard_normal((n_head, D)).astype(np.float32)
    for g in range(n_head_kv):
        K[g, 2777] = np.clip(q[g * 4] * 4, -60000, 60000).astype(np.float16)
    scale = 1.0 / math.sqrt(D)
    out = cuda_attention_mma(q, K, V, 0, n, scale, kernel=kernel)
    ref = ref_attention(q, K, V, n_head_kv, [np.arange(n)] * n_head_kv, scale)
    assert rel_err(out, ref) < MMA_TOL


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="no usable CUDA GPU")
@pytest.mark.parametrize("shape", ATTN_SHAPES)
def test_attention_indexed_matches_reference(shape):
    rng = np.random.default_rng()
    n_head, n_head_kv, D = shape
    n_ctx = 6000
    K, V = random_cache(rng, n_head_kv, n_ctx, D)
    q = (rng.standard_normal((n_head, D)) * 2).astype(np.float32)
    # lists of different lengths per KV head (one may be empty), unsorted tokens allowed
    lists = []
    for g in range(n_head_kv):
        m = int(rng.integers(0, 800)) if g else int(rng.integers(1, 40))
        lists.append(rng.choice(n_ctx, size=m, replace=False))
    if n_head_kv > 2:
        lists[2] = np.zeros(0, np.int64)
    scale = 1.0 / math.sqrt(D)
    out = cuda_attention_indexed(q, K, V, lists, scale)
    ref = ref_attention(q, K, V, n_head_kv, lists, scale)
    assert rel_err(out, ref) < 1e-5
    # every token listed in order: the same as the range form
    full = cuda_attention_indexed(q, K, V, [np.arange(n_ctx)] * n_head_kv, scale)
    assert rel_err(full, cuda_attention(q, K, V, 0, n_ctx, scale).astype(np.float64)) < 1e-6


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="no usable CUDA GPU")
def test_attention_rejects_bad_arguments():
    q = np.zeros((4, 128), np.float32)
    K = np.zeros((2, 10, 128), np.float16)
    out = np.empty_like(q)
    args = (ptr(q, "float *"), 4, 2, 128, ptr(K, "uint16_t *"), ptr(K, "uint16_t *"), 10)
    assert lib.tactic_cuda_attention(*args, 0, 11, 1.0, ptr(out, "float *")) == TACTIC_ERR_INVALID_ARGUMENT
    assert lib.tactic_cuda_attention(ptr(q, "float *"), 4, 3, 128, ptr(K, "uint16_t *"), ptr(K, "uint16_t *"), 10,
                                     0, 5, 1.0, ptr(out, "float *")) == TACTIC_ERR_INVALID_ARGUMENT
    idx = np.array([1, 2, 10], np.int32)  # 10 is past n_ctx
    offsets = np.array([0, 2, 3], np.int64)
    assert lib.tactic_cuda_attention_indexed(*args, ptr(idx, "int32_t *"), ptr(offsets, "int64_t *"), 1.0,
                                             ptr(out, "float *")) == TACTIC_ERR_INVALID_ARGUMENT
