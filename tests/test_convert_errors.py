"""Bad input is a typed error whose message names the file or tensor at fault, and a
failed conversion leaves no output (not even a partial one) behind."""

import json
import os

import pytest

import convert_checkpoints as cc
import pytactic.convert.converter as converter
from pytactic.convert import (
    CheckpointFormatError,
    ConvertError,
    InvalidOptionError,
    QuantizerUnavailableError,
    ShapeMismatchError,
    SourceNotFoundError,
    UnsupportedModelError,
    UnsupportedTokenizerError,
    convert,
)


def fails(tmp_path, src, exc, *words, outtype="f16"):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    with pytest.raises(exc) as e:
        convert(src, out / "model.gguf", outtype)
    msg = str(e.value)
    for w in words:
        assert w in msg, msg
    assert os.listdir(out) == [], "a failed conversion left files behind"
    return msg


def test_directory_without_config(tmp_path):
    cc.write_checkpoint(tmp_path / "m", "llama3")
    (tmp_path / "m" / "config.json").unlink()
    fails(tmp_path, tmp_path / "m", SourceNotFoundError, "config.json")


def test_not_a_directory_nor_repo_id(tmp_path):
    fails(tmp_path, tmp_path / "nope" / "x", SourceNotFoundError, "no such directory")


def test_repo_id_offline_not_cached(tmp_path, monkeypatch):
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub"), raising=False)
    fails(tmp_path, "someone/not-cached-model", SourceNotFoundError, "someone/not-cached-model", "HF_HUB_OFFLINE")


def test_repo_id_from_offline_cache(tmp_path):
    """A repo id found in the Hugging Face cache with HF_HUB_OFFLINE=1. In a child
    process: huggingface_hub reads HF_HUB_CACHE and HF_HUB_OFFLINE when imported."""
    import subprocess
    import sys
    from pathlib import Path

    snap = tmp_path / "hub" / "models--tiny--qwen3" / "snapshots" / ("a" * 40)
    cc.write_checkpoint(snap, "qwen3")
    (tmp_path / "hub" / "models--tiny--qwen3" / "refs").mkdir()
    (tmp_path / "hub" / "models--tiny--qwen3" / "refs" / "main").write_text("a" * 40)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"),
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    code = ("import sys; from pytactic.convert import convert; "
            "r = convert('tiny/qwen3', sys.argv[1], 'f16'); print(r.arch, r.path.is_file())")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "q.gguf")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["qwen3", "True"]


def test_truncated_safetensors(tmp_path):
    cc.write_checkpoint(tmp_path / "m", "qwen2")
    f = tmp_path / "m" / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-100])
    fails(tmp_path, tmp_path / "m", CheckpointFormatError, "model.safetensors", "truncated")


def test_safetensors_header_garbage(tmp_path):
    cc.write_checkpoint(tmp_path / "m", "qwen2")
    f = tmp_path / "m" / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[8:12] = b"\xff\xfe{{"
    f.write_bytes(bytes(data))
    fails(tmp_path, tmp_path / "m", CheckpointFormatError, "model.safetensors", "header")
    f.write_bytes(b"\x00" * 4)
    fails(tmp_path, tmp_path / "m", CheckpointFormatError, "model.safetensors", "too short")


def test_shape_contradicts_config(tmp_path):
    cc.write_checkpoint(tmp_path / "m", "llama3")
    cfg_path = tmp_path / "m" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["intermediate_size"] = 128  # the checkpoint has 96
    cfg_path.write_text(json.dumps(cfg))
    fails(tmp_path, tmp_path / "m", ShapeMismatchError, "model.layers.0.mlp.gate_proj.weight", "[96, 64]", "[128, 64]")


def test_vocab_size_contradicts_embedding(tmp_path):
    cc.write_checkpoint(tmp_path / "m", "qwen3")
    cfg_path = tmp_path / "m" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["vocab_size"] += 1
    cfg_path.write_text(json.dumps(cfg))
    fails(tmp_path, tmp_path / "m", ShapeMismatchError, "model.embed_tokens.weight", "vocab_size")


def test_missing_tensor(tmp_path):
    cfg, w = cc.write_checkpoint(tmp_path / "m", "gemma3")
    del w["model.layers.3.post_feedforward_layernorm.weight"]
    cc.write_safetensors(tmp_path / "m" / "model.safetensors", w)
    fails(tmp_path, tmp_path / "m", ShapeMismatchError, "model.layers.3.post_feedforward_layernorm.weight", "missing")


def test_unknown_tensor(tmp_path):
    cfg, w = cc.write_checkpoint(tmp_path / "m", "llama2")
    w["model.layers.0.self_attn.o_proj.bias"] = w["model.norm.weight"]
    cc.write_safetensors(tmp_path / "m" / "model.safetensors", w)
    fails(tmp_path, tmp_path / "m", UnsupportedModelError, "model.layers.0.self_attn.o_proj.bias")


def test_missing_shard(tmp_path):
    cc.write_checkpoint(tmp_path / "m", "qwen3", shards=2)
    (tmp_path / "m" / "model-00002-of-00002.safetensors").unlink()
    fails(tmp_path, tmp_path / "m", SourceNotFoundError, "model-00002-of-00002.safetensors")


def test_no_weights(tmp_path):
    cc.write_checkpoint(tmp_path / "m", "qwen3")
    (tmp_path / "m" / "model.safetensors").rename(tmp_path / "m" / "pytorch_model.bin")
    fails(tmp_path, tmp_path / "m", SourceNotFoundError, "pytorch_model.bin", "safetensors")


def test_unsupported_architecture(tmp_path):
    cc.write_checkpoint(tmp_path / "m", "llama3", architectures=["PhiForCausalLM"])
    msg = fails(tmp_path, tmp_path / "m", UnsupportedModelError, "PhiForCausalLM")
    for a in ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "Gemma3ForCausalLM"):
        assert a in msg


def test_unsupported_rope_scaling(tmp_path):
    cc.write_checkpoint(tmp_path / "m", "llama3", rope_scaling={"rope_type": "dynamic", "factor": 2.0})
    fails(tmp_path, tmp_path / "m", UnsupportedModelError, "dynamic")


def test_qwen_sliding_window_refused(tmp_path):
    cc.write_checkpoint(tmp_path / "m", "qwen2", use_sliding_window=True, sliding_window=8)
    fails(tmp_path, tmp_path / "m", UnsupportedModelError, "use_sliding_window")


def test_unknown_pre_tokenizer(tmp_path):
    cc.write_checkpoint(tmp_path / "m", "qwen2")
    p = tmp_path / "m" / "tokenizer.json"
    tj = json.loads(p.read_text())
    tj["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\p{L}+|\p{N}+|[^\s]+|\s+"
    p.write_text(json.dumps(tj))
    fails(tmp_path, tmp_path / "m", UnsupportedTokenizerError, "pre-tokenizer", "llama-bpe", "qwen2")


def test_no_tokenizer(tmp_path):
    cc.write_checkpoint(tmp_path / "m", "qwen2")
    (tmp_path / "m" / "tokenizer.json").unlink()
    fails(tmp_path, tmp_path / "m", SourceNotFoundError, "tokenizer.model or tokenizer.json")


def test_corrupt_tokenizer_model(tmp_path):
    cc.write_checkpoint(tmp_path / "m", "llama2")
    p = tmp_path / "m" / "tokenizer.model"
    p.write_bytes(p.read_bytes()[:-7])
    fails(tmp_path, tmp_path / "m", CheckpointFormatError, "tokenizer.model")


def test_failure_while_writing_removes_the_partial_file(tmp_path, monkeypatch):
    cc.write_checkpoint(tmp_path / "m", "llama3")
    real, calls = converter.quantize, []

    def flaky(data, qtype, native):
        calls.append(1)
        if len(calls) == 5:
            raise CheckpointFormatError("simulated failure in the 5th tensor")
        return real(data, qtype, native)

    monkeypatch.setattr(converter, "quantize", flaky)
    fails(tmp_path, tmp_path / "m", CheckpointFormatError, "5th tensor")
    assert len(calls) == 5


def test_existing_output_survives_a_failure(tmp_path):
    cc.write_checkpoint(tmp_path / "m", "llama3")
    out = tmp_path / "keep.gguf"
    out.write_bytes(b"previous")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointFormatError, match="config.json"):
        convert(tmp_path / "m", out, "f16")
    assert out.read_bytes() == b"previous"


def test_k_quant_without_native_quantizer(tmp_path, monkeypatch):
    import pytactic.convert.quantize as qz

    def unavailable(self):
        raise QuantizerUnavailableError("K-quant output needs the native library libtactic (test)")

    monkeypatch.setattr(qz.NativeQuantizer, "__init__", unavailable)
    cc.write_checkpoint(tmp_path / "m", "qwen3", hidden_size=256, intermediate_size=512)
    fails(tmp_path, tmp_path / "m", QuantizerUnavailableError, "libtactic", outtype="q4_k_m")


def test_unknown_outtype(tmp_path):
    cc.write_checkpoint(tmp_path / "m", "qwen3")
    fails(tmp_path, tmp_path / "m", InvalidOptionError, "q3_xyz", "q8_0", outtype="q3_xyz")
    assert issubclass(InvalidOptionError, (ConvertError, ValueError))


def test_cli_reports_errors(tmp_path, capsys):
    from pytactic.convert.__main__ import main

    assert main([str(tmp_path / "missing-dir"), "--no-progress"]) == 1
    assert capsys.readouterr().err.startswith("error: ")
