"""Block formats and dot products through the C ABI, held to gguf.quants and to numpy
references that compute each dot product the way llama.cpp's CPU does (FORMATS.md
§2.3): the activation is first quantized to the weight's vec_dot type."""

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize as gguf_quantize

from pytactic._native import check, ffi, lib
from pytactic.errors import InvalidArgumentError, UnsupportedModelError

TYPES = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"]
BLOCK = {"F32": (1, 4), "F16": (1, 2), "BF16": (1, 2), "Q4_0": (32, 18), "Q4_1": (32, 20),
         "Q5_0": (32, 22), "Q5_1": (32, 24), "Q8_0": (32, 34), "Q4_K": (256, 144),
         "Q5_K": (256, 176), "Q6_K": (256, 210)}
# Byte offsets of the f16 scale fields inside a block (random bytes there could be inf/NaN).
F16_FIELDS = {"Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
              "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}


def tid(name):
    return int(T[name])


# ---- thin wrappers over the C ABI -------------------------------------------------------

def ptr_f32(a):
    return ffi.cast("float *", ffi.from_buffer(a))


def dequantize(name, data, n):
    out = np.empty(n, dtype=np.float32)
    buf = np.ascontiguousarray(data, dtype=np.uint8)
    check(lib.tactic_dequantize(tid(name), ffi.from_buffer(buf), buf.nbytes, n, ptr_f32(out)))
    return out


def quantize(name, x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    rows, n = x.shape
    size = lib.tactic_type_row_size(tid(name), n) * rows
    out = np.zeros(size, dtype=np.uint8)
    check(lib.tactic_quantize(tid(name), ptr_f32(x), rows, n, ffi.from_buffer(out), out.nbytes))
    return out.reshape(rows, -1)


def vec_dot(name, w, x, impl=0):
    w = np.ascontiguousarray(w, dtype=np.uint8)
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = ffi.new("float *")
    check(lib.tactic_vec_dot(tid(name), ffi.from_buffer(w), w.nbytes, ptr_f32(x), x.size, impl, out))
    return out[0]


IMPL_NAMES = {1: "scalar", 2: "AVX2", 3: "AVX-512"}


def impl_available(impl):
    w = np.zeros(34, dtype=np.uint8)
    x = np.zeros(32, dtype=np.float32)
    out = ffi.new("float *")
    return lib.tactic_vec_dot(tid("Q8_0"), ffi.from_buffer(w), 34, ptr_f32(x), 32, impl, out) == 0


def simd_available():
    return impl_available(2)


def simd_impls():
    """The SIMD implementations this CPU runs (2 = AVX2, 3 = AVX-512)."""
    return [i for i in (2, 3) if impl_available(i)]


# ---- random data ----------------------------------------------------------------------

def random_row(name, n, rng):
    """Random bytes for n elements of `name`, with finite random f16 scales."""
    bs, ts = BLOCK[name]
    nb = n // bs
    if name == "F32":
        return rng.standard_normal(n).astype(np.float32).view(np.uint8)
    if name == "F16":
        return rng.standard_normal(n).astype(np.float16).view(np.uint8)
    if name == "BF16":
        v = rng.standard_normal(n).astype(np.float32).view(np.uint32)
        return (v >> 16).astype(np.uint16).view(np.uint8)
    blocks = rng.integers(0, 256, size=(nb, ts), dtype=np.uint8)
    for off in F16_FIELDS[name]:
        scale = rng.uniform(-0.05, 0.05, size=nb).astype(np.float16)
        blocks[:, off:off + 2] = scale.view(np.uint8).reshape(nb, 2)
    return blocks.reshape(-1)


# ---- numpy references of llama.cpp's activation quantizers -----------------------------

def q8_0_ref(x, f32_scale=False):
    """x86 quantize_row_q8_0: d = amax/127 (stored f16), q = round-half-even(x·127/amax).
    f32_scale: also return d before its f16 rounding (Q8_1's s = f16(d·Σq) uses it)."""
    b = x.reshape(-1, 32).astype(np.float32)
    amax = np.abs(b).max(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        inv = np.where(amax == 0, np.float32(0), np.float32(127) / amax).astype(np.float32)
    q = np.clip(np.rint(b * inv), -127, 127)
    d32 = (amax / np.float32(127)).astype(np.float32)
    d = d32.astype(np.float16).astype(np.float32)
    return (d, q, d32) if f32_scale else (d, q)


def q8_k_ref(x):
    """quantize_row_q8_K: scale from the signed extreme, d = 1/iscale (may be negative)."""
    b = x.reshape(-1, 256).astype(np.float32)
    idx = np.abs(b).argmax(axis=1)
    mx = b[np.arange(len(b)), idx][:, None]
    with np.errstate(divide="ignore"):
        iscale = np.where(mx == 0, np.float32(0), np.float32(-127) / mx).astype(np.float32)
    q = np.minimum(127, np.rint(iscale * b))
    with np.errstate(divide="ignore"):
        d = np.where(iscale == 0, np.float32(0), np.float32(1) / iscale).astype(np.float32)
    return d, q


def reference_dot(name, w_bytes, x):
    """dot(dequantized weight, dequantized quantized activation), in float64, with each
    block's min term taken the way llama.cpp takes it."""
    n = x.size
    wq = gguf_dequantize(w_bytes.reshape(1, -1), T[name]).reshape(-1).astype(np.float64)
    if name == "F32":
        return float(np.dot(wq, x.astype(np.float64)))
    if name == "F16":
        return float(np.dot(wq, x.astype(np.float16).astype(np.float64)))
    if name == "BF16":
        a = (x.astype(np.float32).view(np.uint32) + 0x7FFF + ((x.view(np.uint32) >> 16) & 1)) & 0xFFFF0000
        return float(np.dot(wq, a.view(np.float32).astype(np.float64)))
    if name in ("Q4_0", "Q5_0", "Q8_0"):
        d, q = q8_0_ref(x)
        return float(np.dot(wq, (d * q).reshape(-1).astype(np.float64)))
    if name in ("Q4_1", "Q5_1"):
        d, q, d32 = q8_0_ref(x, f32_scale=True)
        blocks = w_bytes.reshape(-1, BLOCK[name][1])
        m = blocks[:, 2:4].copy().view(np.float16).astype(np.float64)  # [nb, 1]
        s = (np.float32(1) * q.sum(axis=1).astype(np.float32) * d32[:, 0]).astype(np.float16)
        s = s.astype(np.float64)[:, None]
        w_no_min = wq.reshape(-1, 32) - m
        return float(np.sum(w_no_min * (d * q).astype(np.float64)) + np.sum(m * s))
    d, q = q8_k_ref(x)
    return float(np.dot(wq, (d.astype(np.float64) * q).reshape(-1)))


def gguf_tensors(path):
    """{name: (type name, ne0, rows as a uint8 memmap [ne1, row bytes])} of a GGUF file.
    A minimal reader: gguf.GGUFReader takes ~30 s on the 262k-token vocabulary."""
    import struct

    f = open(path, "rb")
    buf = f.read(1 << 24)

    def rd(fmt, pos):
        return struct.unpack_from("<" + fmt, buf, pos), pos + struct.calcsize("<" + fmt)

    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip_value(vt, pos):
        if vt == 8:
            (ln,), pos = rd("Q", pos)
            return pos + ln
        if vt == 9:
            (et, cnt), pos = rd("IQ", pos)
            if et in sizes:
                return pos + sizes[et] * cnt
            for _ in range(cnt):
                pos = skip_value(et, pos)
            return pos
        return pos + sizes[vt]

    (magic, version, n_tensors, n_kv), pos = rd("IIQQ", 0)
    assert magic == 0x46554747 and version == 3
    for _ in range(n_kv):
        (ln,), pos = rd("Q", pos)
        (vt,), pos = rd("I", pos + ln)
        pos = skip_value(vt, pos)
    infos = []
    for _ in range(n_tensors):
        (ln,), pos = rd("Q", pos)
        name = buf[pos:pos + ln].decode()
        (nd,), pos = rd("I", pos + ln)
        dims, pos = rd("Q" * nd, pos)
        (ty, off), pos = rd("IQ", pos)
        infos.append((name, dims, ty, off))
    data_start = (pos + 31) // 32 * 32
    out = {}
    for name, dims, ty, off in infos:
        if len(dims) != 2 or T(ty).name not in BLOCK:
            continue
        bs, ts = BLOCK[T(ty).name]
        row = dims[0] // bs * ts
        mm = np.memmap(path, dtype=np.uint8, mode="r", offset=data_start + off, shape=(dims[1], row))
        out[name] = (T(ty).name, dims[0], mm)
    return out


def dot_scale(name, w_bytes, x):
    """Σ|w·a|: the magnitude f32 rounding errors scale with."""
    wq = gguf_dequantize(w_bytes.reshape(1, -1), T[name]).reshape(-1).astype(np.float64)
    return float(np.sum(np.abs(wq * x.astype(np.float64)))) + 1e-30


# ---- sizes ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", TYPES)
def test_sizes(name):
    bs, ts = BLOCK[name]
    assert lib.tactic_type_block_size(tid(name)) == bs
    assert lib.tactic_type_row_size(tid(name), 4 * bs) == 4 * ts
    assert lib.tactic_type_row_size(tid(name), 256 * 3) == 256 * 3 // bs * ts


def test_sizes_of_unknown_types():
    assert lib.tactic_type_block_size(4) == 0
    assert lib.tactic_type_row_size(4, 32) == 0
    assert lib.tactic_type_row_size(tid("Q4_0"), 33) == 0
    assert lib.tactic_type_block_size(-1) == 0


# ---- dequantization ---------------------------------------------------------------------

@pytest.mark.parametrize("name", TYPES)
def test_dequantize_matches_gguf(name):
    rng = np.random.default_rng(1)
    n = 256 * 8
    w = random_row(name, n, rng)
    got = dequantize(name, w, n)
    want = gguf_dequantize(w.reshape(1, -1), T[name]).reshape(-1).astype(np.float32)
    np.testing.assert_array_equal(got, want)


def test_dequantize_real_model_tensors(gemma_path):
    """Every tensor type of the Gemma file, a few rows each, against gguf.quants."""
    seen = set()
    for name, (tname, n, mm) in gguf_tensors(gemma_path).items():
        if tname in seen:
            continue
        seen.add(tname)
        for r in np.array(mm[:3]):
            want = gguf_dequantize(r.reshape(1, -1), T[tname]).reshape(-1)
            np.testing.assert_array_equal(dequantize(tname, r, n), want, err_msg=name)
    assert {"Q8_0", "Q5_0", "Q4_K", "Q6_K"} <= seen


# ---- dot products -----------------------------------------------------------------------

@pytest.mark.parametrize("name", TYPES)
@pytest.mark.parametrize("impl", [1, 2, 3])
def test_vec_dot_matches_reference(name, impl):
    if not impl_available(impl):
        pytest.skip(f"this CPU cannot run the {IMPL_NAMES[impl]} kernels")
    rng = np.random.default_rng(2)
    for n in (256, 256 * 5):
        for trial in range(4):
            w = random_row(name, n, rng)
            x = (rng.standard_normal(n) * rng.uniform(0.1, 10)).astype(np.float32)
            if trial == 3:
                x[: n // 2] = 0  # whole zero blocks quantize to d = 0
            got = vec_dot(name, w, x, impl)
            want = reference_dot(name, w, x)
            assert abs(got - want) <= 5e-6 * dot_scale(name, w, x) + 1e-30, (name, n, got, want)


@pytest.mark.parametrize("name", TYPES)
@pytest.mark.parametrize("impl", [2, 3])
def test_vec_dot_simd_equals_scalar(name, impl):
    if not impl_available(impl):
        pytest.skip(f"this CPU cannot run the {IMPL_NAMES[impl]} kernels")
    rng = np.random.default_rng(3)
    # 640 = 20 legacy blocks (Gemma's rows), 672 = 21: the odd block out of the pairs
    for n in (256, 256 * 3, 2048) + ((640, 672) if BLOCK[name][0] <= 32 else ()):
        w = random_row(name, n, rng)
        x = rng.standard_normal(n).astype(np.float32)
        s, v = vec_dot(name, w, x, 1), vec_dot(name, w, x, impl)
        assert abs(s - v) <= 2e-6 * dot_scale(name, w, x), (name, n, s, v)


def test_vec_dot_real_weights(gemma_path):
    """Real rows of each Gemma weight type against the numpy reference."""
    rng = np.random.default_rng(4)
    seen = set()
    for name, (tname, n, mm) in gguf_tensors(gemma_path).items():
        if tname in seen:
            continue
        seen.add(tname)
        for r in np.array(mm[:4]):
            x = rng.standard_normal(n).astype(np.float32)
            for impl in [1] + simd_impls():
                got = vec_dot(tname, r, x, impl)
                want = reference_dot(tname, r, x)
                assert abs(got - want) <= 5e-6 * dot_scale(tname, r, x), (name, impl, got, want)


# ---- quantization -----------------------------------------------------------------------

# Upper bounds of RMS(dequantize(quantize(x)) - x) / RMS(x) for Gaussian x.
QUANT_ERROR = {"F16": 1e-3, "BF16": 5e-3, "Q8_0": 0.01, "Q4_0": 0.13, "Q4_1": 0.12, "Q5_0": 0.065,
               "Q5_1": 0.06, "Q4_K": 0.1, "Q5_K": 0.05, "Q6_K": 0.025}


@pytest.mark.parametrize("name", list(QUANT_ERROR))
def test_quantize_roundtrip_error(name):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 1024)).astype(np.float32)
    x[3] *= 1000  # scale invariance
    x[4, :256] = 0  # zero blocks
    q = quantize(name, x)
    y = np.stack([dequantize(name, r, 1024) for r in q])
    np.testing.assert_array_equal(y, gguf_dequantize(q, T[name]))
    assert np.all(y[4, :256] == 0)
    err = np.sqrt(np.mean((y - x) ** 2)) / np.sqrt(np.mean(x**2))
    assert err < QUANT_ERROR[name], (name, err)
    rel = np.sqrt(np.mean((y[3] - x[3]) ** 2)) / np.sqrt(np.mean(x[3] ** 2))
    assert rel < QUANT_ERROR[name], (name, rel)


def test_k_quants_beat_their_legacy_counterparts():
    """The iterative scale/min search should do better than the plain block formats."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((16, 1024)).astype(np.float32)

    def err(name):
        y = gguf_dequantize(quantize(name, x), T[name])
        return np.sqrt(np.mean((y - x) ** 2))

    assert err("Q4_K") < err("Q4_1")
    assert err("Q5_K") < err("Q5_1")


@pytest.mark.parametrize("name", ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"])
def test_quantize_matches_gguf(name):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((4, 512)) * np.array([[1], [1e-3], [50], [1]])).astype(np.float32)
    x[3, :64] = 0
    got = quantize(name, x)
    if name == "F16":
        want = x.astype(np.float16).view(np.uint8).reshape(4, -1)
    else:
        want = gguf_quantize(x, T[name]).reshape(4, -1)
    np.testing.assert_array_equal(got, want)


# ---- bad arguments ----------------------------------------------------------------------

def test_bad_arguments_raise_typed_errors():
    buf = np.zeros(1024, dtype=np.uint8)
    out = np.zeros(256, dtype=np.float32)
    x = np.zeros(256, dtype=np.float32)
    res = ffi.new("float *")
    with pytest.raises(InvalidArgumentError, match="multiple"):
        check(lib.tactic_dequantize(tid("Q4_0"), ffi.from_buffer(buf), buf.nbytes, 33, ptr_f32(out)))
    with pytest.raises(InvalidArgumentError, match="bytes"):
        check(lib.tactic_dequantize(tid("Q8_0"), ffi.from_buffer(buf), 33, 32, ptr_f32(out)))
    with pytest.raises(InvalidArgumentError, match="unknown"):
        check(lib.tactic_dequantize(4, ffi.from_buffer(buf), buf.nbytes, 32, ptr_f32(out)))
    with pytest.raises(InvalidArgumentError):
        check(lib.tactic_dequantize(tid("Q8_0"), ffi.NULL, buf.nbytes, 32, ptr_f32(out)))
    with pytest.raises(InvalidArgumentError):
        check(lib.tactic_dequantize(tid("Q8_0"), ffi.from_buffer(buf), buf.nbytes, -32, ptr_f32(out)))
    with pytest.raises(UnsupportedModelError, match="Q2_K"):
        check(lib.tactic_dequantize(tid("Q2_K"), ffi.from_buffer(buf), buf.nbytes, 256, ptr_f32(out)))
    with pytest.raises(UnsupportedModelError):
        check(lib.tactic_quantize(tid("Q3_K"), ptr_f32(x), 1, 256, ffi.from_buffer(buf), buf.nbytes))
    with pytest.raises(InvalidArgumentError, match="bytes"):
        check(lib.tactic_quantize(tid("Q4_K"), ptr_f32(x), 1, 256, ffi.from_buffer(buf), 100))
    with pytest.raises(InvalidArgumentError, match="multiple"):
        check(lib.tactic_quantize(tid("Q6_K"), ptr_f32(x), 1, 128, ffi.from_buffer(buf), buf.nbytes))
    with pytest.raises(InvalidArgumentError, match="n_rows"):
        check(lib.tactic_quantize(tid("Q8_0"), ptr_f32(x), -1, 32, ffi.from_buffer(buf), buf.nbytes))
    with pytest.raises(InvalidArgumentError, match="bytes"):
        check(lib.tactic_vec_dot(tid("Q6_K"), ffi.from_buffer(buf), 209, ptr_f32(x), 256, 0, res))
    with pytest.raises(InvalidArgumentError, match="impl"):
        check(lib.tactic_vec_dot(tid("Q8_0"), ffi.from_buffer(buf), buf.nbytes, ptr_f32(x), 32, 7, res))
    with pytest.raises(InvalidArgumentError):
        check(lib.tactic_vec_dot(tid("Q8_0"), ffi.from_buffer(buf), buf.nbytes, ptr_f32(x), 32, 0, ffi.NULL))
    with pytest.raises(UnsupportedModelError):
        check(lib.tactic_vec_dot(tid("Q8_K"), ffi.from_buffer(buf), buf.nbytes, ptr_f32(x), 256, 0, res))


def test_non_finite_input_does_not_crash():
    x = np.full((1, 256), np.nan, dtype=np.float32)
    x[0, 1] = np.inf
    for name in QUANT_ERROR:
        quantize(name, x)  # any bytes, but no crash or UB trap
    w = random_row("Q8_0", 256, np.random.default_rng(8))
    vec_dot("Q8_0", w, x[0])


# ---- matmul (the forward pass's kernel, through the benchmark hook) ----------------------

def matmul(name, w_rows, x, impl=0, n_threads=1):
    w = np.ascontiguousarray(w_rows, dtype=np.uint8)
    x = np.ascontiguousarray(x, dtype=np.float32)
    n_tokens, n = x.shape
    rows = w.shape[0]
    y = np.zeros((n_tokens, rows), dtype=np.float32)
    check(lib.tactic_bench_matmul(tid(name), ffi.from_buffer(w), w.nbytes, rows, n, ptr_f32(x), n_tokens,
                                  ptr_f32(y), impl, n_threads, 1, ffi.NULL))
    return y


@pytest.mark.parametrize("name", TYPES)
def test_matmul_equals_vec_dot(name):
    """Every (row, token) of a matmul, with token counts that exercise every tile shape
    and the token blocking, equals the dot product of that row and token."""
    rng = np.random.default_rng(9)
    # 17 legacy blocks: an odd one out of the AVX-512 pairs
    n, rows = (544 if BLOCK[name][0] <= 32 else 512), 37
    w = np.stack([random_row(name, n, rng) for _ in range(rows)])
    x = rng.standard_normal((140, n)).astype(np.float32)
    want = np.array([[vec_dot(name, w[j], x[t], 1) for j in range(rows)] for t in range(140)])
    for n_tokens in (1, 3, 6, 13, 70, 140):  # 140: past one 128-token pass of the AVX-512 tiles
        got = matmul(name, w, x[:n_tokens], impl=1, n_threads=2)
        np.testing.assert_array_equal(got, want[:n_tokens])
        scale = np.array([[dot_scale(name, w[j], x[t]) for j in range(rows)] for t in range(n_tokens)])
        for impl in simd_impls():
            for threads in (1, 2):
                got = matmul(name, w, x[:n_tokens], impl=impl, n_threads=threads)
                assert np.all(np.abs(got - want[:n_tokens]) <= 2e-6 * scale), (name, impl, n_tokens)


# ---- activation quantizers ---------------------------------------------------------------

def quantize_activation(weight_name, x, impl):
    x = np.ascontiguousarray(x, dtype=np.float32)
    vt = {"Q4_0": "Q8_0", "Q5_0": "Q8_0", "Q8_0": "Q8_0", "Q4_1": "Q8_1", "Q5_1": "Q8_1"}.get(weight_name, "Q8_K")
    size = {"Q8_0": 34, "Q8_1": 36, "Q8_K": 292}[vt] * x.size // (32 if vt != "Q8_K" else 256)
    out = np.zeros(size, dtype=np.uint8)
    check(lib.tactic_bench_quantize_activation(tid(weight_name), ptr_f32(x), x.size, impl,
                                               ffi.from_buffer(out), out.nbytes))
    return out


@pytest.mark.parametrize("weight", ["Q8_0", "Q4_1", "Q4_K"])
def test_activation_quantizers_match_llama_cpp(weight):
    """Scalar and SIMD write the same bytes, and they are llama.cpp's (numpy reference)."""
    rng = np.random.default_rng(10)
    x = (rng.standard_normal(2048) * np.repeat(rng.uniform(0.01, 100, 8), 256)).astype(np.float32)
    x[256:512] = 0
    x[600], x[601] = 1e3, -1e3  # a tie for the largest magnitude: the first one sets the sign (Q8_K)
    scalar = quantize_activation(weight, x, 1)
    for impl in simd_impls():
        np.testing.assert_array_equal(quantize_activation(weight, x, impl), scalar)
    if weight == "Q4_K":
        blocks = scalar.reshape(-1, 292)
        d, q = q8_k_ref(x)
        np.testing.assert_array_equal(blocks[:, :4].copy().view(np.float32)[:, 0], d[:, 0])
        np.testing.assert_array_equal(blocks[:, 4:260].view(np.int8), q)
        bsums = blocks[:, 260:].copy().view(np.int16)
        np.testing.assert_array_equal(bsums, q.reshape(-1, 16, 16).sum(axis=2))
    else:
        bs = 34 if weight == "Q8_0" else 36
        blocks = scalar.reshape(-1, bs)
        d, q, d32 = q8_0_ref(x, f32_scale=True)
        np.testing.assert_array_equal(blocks[:, :2].copy().view(np.float16)[:, 0].astype(np.float32), d[:, 0])
        np.testing.assert_array_equal(blocks[:, bs - 32:].view(np.int8), q)
        if weight == "Q4_1":
            s = (q.sum(axis=1).astype(np.float32) * d32[:, 0]).astype(np.float16)
            np.testing.assert_array_equal(blocks[:, 2:4].copy().view(np.float16)[:, 0], s)
