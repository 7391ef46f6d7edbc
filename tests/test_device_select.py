"""Choosing the device: "auto" runs where it can, "cuda" without a GPU is a clear
error, a bad name is a ValueError. These run everywhere (CI has no GPU)."""

import pytest

from pytactic._native import lib
from pytactic.errors import UnsupportedModelError
from pytactic.model import Model

from test_gpu_forward import PRESETS, TINY, _mrg  # noqa: F401  (the random-file maker)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("dev") / "tiny.gguf"
    _mrg().make_random_gguf(out, "llama-3.1-8b", "q8_0", **TINY)
    return str(out)


def test_bad_device_name(tiny):
    with pytest.raises(ValueError, match="device"):
        Model(tiny, device="gpu")


def test_auto_runs_somewhere(tiny, capsys):
    m = Model(tiny, n_ctx=64, device="auto")
    try:
        want = "cuda" if lib.tactic_cuda_device_count() > 0 else "cpu"
        assert m.device == want
        assert m.generate([1, 5, 9], max_tokens=2, temperature=0) is not None
    finally:
        m.close()


def test_cpu_is_cpu(tiny):
    m = Model(tiny, n_ctx=64, device="cpu")
    try:
        assert m.device == "cpu"
    finally:
        m.close()


@pytest.mark.skipif(lib.tactic_cuda_device_count() > 0, reason="a GPU is usable here")
def test_cuda_without_a_gpu_is_a_clear_error(tiny):
    with pytest.raises(UnsupportedModelError, match="CUDA"):
        Model(tiny, n_ctx=64, device="cuda")
