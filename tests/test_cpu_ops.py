"""The CPU forward pass's element-wise ops (cpu/ops.cpp: the gated GELU-tanh / SiLU, f16
rounding of q, f16 stores into the KV cache) on every kernel path this CPU runs (scalar,
AVX2: ops_avx2.cpp, AVX-512: ops_avx512.cpp), against a float64 numpy reference and, for the
f16 conversions, numpy's own round-to-nearest-even bits."""

import numpy as np
import pytest

from pytactic._native import ffi, lib
from pytactic.errors import InvalidArgumentError

IMPL_NAMES = {1: "scalar", 2: "AVX2", 3: "AVX-512"}
SIZES = (0, 7, 1005)  # nothing; the scalar tail only; vectors and a tail


def available(impl):
    probe = np.zeros(1, np.float32)
    return lib.tactic_bench_elementwise(3, ffi.from_buffer("float *", probe), ffi.NULL, 0, 1.0,
                                        ffi.cast("uint16_t *", ffi.from_buffer(np.zeros(1, np.uint16))), impl) == 0


def run(op, x, u=None, scale=1.0, impl=1, with_dst=True):
    x = np.array(x, np.float32)
    dst = np.zeros(len(x), np.uint16)
    st = lib.tactic_bench_elementwise(op, ffi.from_buffer("float *", x),
                                      ffi.from_buffer("float *", np.asarray(u, np.float32)) if u is not None else ffi.NULL,
                                      len(x), scale, ffi.cast("uint16_t *", ffi.from_buffer(dst)) if with_dst else ffi.NULL,
                                      impl)
    assert st == 0, st
    return x, dst


def activations(n, rng):
    """Inputs across the ranges the FFN sees, with the tails of the activation (|x| up to 30)."""
    x = rng.standard_normal(n) * rng.choice([0.1, 1.0, 4.0, 30.0], size=n)
    return x.astype(np.float32), rng.standard_normal(n).astype(np.float32)


@pytest.mark.parametrize("impl", [1, 2, 3])
@pytest.mark.parametrize("op", [0, 1], ids=["gelu_tanh", "silu"])
def test_gated_activation_matches_float64(op, impl):
    if not available(impl):
        pytest.skip(f"this CPU cannot run the {IMPL_NAMES[impl]} kernels")
    rng = np.random.default_rng(11 + op)
    for n in SIZES:
        x, u = activations(n, rng)
        xd = x.astype(np.float64)
        if op == 0:
            act = 0.5 * xd * (1 + np.tanh(0.79788456080286535588 * xd * (1 + 0.044715 * xd * xd)))
        else:
            act = xd / (1 + np.exp(-xd))
        want = act * u
        got, _ = run(op, x, u, impl=impl)
        # float32 arithmetic: a few ulp of the result, plus the cancellation in 1 + tanh(z)
        # for negative z (absolute, ~1e-7 of |x u|) that the scalar std::tanh path has too
        err = np.abs(got - want)
        tol = 4e-6 * np.abs(want) + 4e-7 * np.abs(xd * u) + 1e-30
        assert np.all(err <= tol), (n, float(np.max(err / tol)), float(x[np.argmax(err / tol)]))


@pytest.mark.parametrize("impl", [1, 2, 3])
def test_f16_round_and_store_match_numpy(impl):
    if not available(impl):
        pytest.skip(f"this CPU cannot run the {IMPL_NAMES[impl]} kernels")
    rng = np.random.default_rng(5)
    special = np.array([0.0, -0.0, 1.0, 65504.0, 65520.0, 1e6, -1e6, np.inf, -np.inf, 6e-8, 3e-8, -2.9e-8,
                        1e-5, 0.1, 1 + 2 ** -11, 1 + 3 * 2 ** -11], np.float32)  # ties go to even
    for n in SIZES:
        x = (rng.standard_normal(n) * rng.choice([1e-6, 1e-3, 1.0, 100.0, 1e4], size=n)).astype(np.float32)
        x[: min(n, len(special))] = special[: min(n, len(special))]
        for scale in (1.0, 0.0625):
            with np.errstate(over="ignore"):  # (1e6 and inf are meant to overflow to inf)
                want = (x * np.float32(scale)).astype(np.float16)
            got, bits = run(2, x, scale=scale, impl=impl)
            np.testing.assert_array_equal(bits, want.view(np.uint16))
            np.testing.assert_array_equal(got, want.astype(np.float32))
            got_nodst, _ = run(2, x, scale=scale, impl=impl, with_dst=False)  # dst may be NULL
            np.testing.assert_array_equal(got_nodst, want.astype(np.float32))
        _, bits = run(3, x, impl=impl)
        with np.errstate(over="ignore"):
            np.testing.assert_array_equal(bits, x.astype(np.float16).view(np.uint16))


def test_elementwise_hook_rejects_bad_arguments():
    x = np.zeros(4, np.float32)
    xp = ffi.from_buffer("float *", x)
    assert lib.tactic_bench_elementwise(4, xp, xp, 4, 1.0, ffi.NULL, 1) == InvalidArgumentError.status
    assert lib.tactic_bench_elementwise(0, xp, ffi.NULL, 4, 1.0, ffi.NULL, 1) == InvalidArgumentError.status
    assert lib.tactic_bench_elementwise(3, xp, ffi.NULL, 4, 1.0, ffi.NULL, 1) == InvalidArgumentError.status
    assert lib.tactic_bench_elementwise(2, xp, ffi.NULL, 4, 1.0, ffi.NULL, 7) == InvalidArgumentError.status
