"""A converted file loads in llama.cpp (through llama-cpp-python, when installed)
and gives the same greedy tokens as pytactic on the same file; quantized tensors are
the bytes llama.cpp's own quantizer makes."""

import numpy as np
import pytest

import convert_checkpoints as cc
from pytactic.convert import convert
from llama_cpp_runner import greedy
from pytactic.lowlevel import NativeSession

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python (llama.cpp, the reference) is not installed")

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


# llama.cpp's file types for our K-quant outtypes (llama.h's enum llama_ftype).
FTYPES = {"q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
          "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K", "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0"}


@pytest.mark.parametrize("outtype", list(FTYPES))
def test_quantized_bytes_match_llama_cpp_quantizer(tmp_path, outtype):
    """Our quantized tensors are byte for byte what llama.cpp's own quantizer
    (llama_model_quantize, no importance matrix) makes of the same f32 file, for every
    tensor both give the same type (the K-quant mixes may pick differently)."""
    import ctypes

    import gguf

    cc.write_checkpoint(tmp_path / "m", "llama3", dtype="BF16", hidden_size=256, intermediate_size=512)
    f32 = convert(tmp_path / "m", tmp_path / "f32.gguf", "f32").path
    ours = convert(tmp_path / "m", tmp_path / "ours.gguf", outtype).path
    theirs = tmp_path / "theirs.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, FTYPES[outtype])
    params.nthread = 1
    assert llama_cpp.llama_model_quantize(str(f32).encode(), str(theirs).encode(), ctypes.byref(params)) == 0

    def tensors(path):
        return {t.name: t for t in gguf.GGUFReader(path).tensors}

    a, b = tensors(ours), tensors(theirs)
    assert a.keys() == b.keys()
    plain = {gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16}
    compared = set()
    for name, t in a.items():
        if t.tensor_type != b[name].tensor_type or t.tensor_type in plain:
            continue
        assert bytes(t.data) == bytes(b[name].data), (name, t.tensor_type.name)
        compared.add(t.tensor_type.name)
    want = {"q4_k_m": {"Q4_K", "Q6_K"}, "q5_k_m": {"Q5_K", "Q6_K"}, "q6_k": {"Q6_K"}, "q8_0": {"Q8_0"}}[outtype]
    assert want <= compared, compared
