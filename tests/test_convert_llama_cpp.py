"""A converted file loads in llama.cpp (through llama-cpp-python, when installed)
and gives the same greedy tokens as pytactic on the same file."""

import numpy as np
import pytest

import convert_checkpoints as cc
from pytactic.convert import convert
from llama_cpp_runner import greedy
from pytactic.lowlevel import NativeSession

llama_cpp = pytest.importorskip("llama_cpp")

PROMPT = [5, 17, 42, 99, 3, 250, 7, 8]
N_GEN = 12
MIN_GAP = 0.05  # top-2 gaps below this are near-ties, not compared


def pytactic_logits(path, tokens):
    with NativeSession(path, n_ctx=64, n_threads=1) as s:
        return s.eval(tokens, logits_all=True)


def llama_cpp_greedy(path):
    return greedy(llama_cpp, path, PROMPT, N_GEN)


@pytest.mark.parametrize("arch,outtype", [("llama3", "f32"), ("qwen2", "f16"), ("qwen3", "q8_0"),
                                          ("gemma3", "f32"), ("llama3", "q4_k_m")])
def test_llama_cpp_greedy_matches(tmp_path, arch, outtype):
    """Teacher-forced along llama.cpp's greedy tokens, pytactic's argmax is llama.cpp's
    token at every step pytactic does not itself see as a near-tie (random models
    have many)."""
    hidden = {"q4_k_m": dict(hidden_size=256, intermediate_size=512)}.get(outtype, {})
    cc.write_checkpoint(tmp_path / "m", arch, dtype="BF16", **hidden)
    res = convert(tmp_path / "m", tmp_path / "m.gguf", outtype)
    theirs = llama_cpp_greedy(res.path)
    logits = pytactic_logits(res.path, PROMPT + theirs)[len(PROMPT) - 1 : -1]
    top2 = np.sort(logits, axis=-1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > MIN_GAP
    assert clear.sum() >= N_GEN // 2, "the random model is too near-tied to compare"
    ours = logits.argmax(-1)
    assert np.array_equal(ours[clear], np.array(theirs)[clear]), (ours.tolist(), theirs)
