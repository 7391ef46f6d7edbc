"""Round trip: tiny random HF checkpoints -> converter -> pytactic's forward pass,
against the independent numpy HF forward (tests/hf_reference.py). f32 output must
agree tightly (the runtime's f16 KV cache is the main difference); quantized output
loosely."""

import numpy as np
import pytest

import convert_checkpoints as cc
import hf_reference
from pytactic.convert import convert

TOKENS = [5, 17, 42, 99, 3, 250, 7, 8, 11, 60, 2, 33]


def runtime_logits(path, tokens):
    """All-position logits from pytactic's C ABI (full attention, one thread)."""
    from pytactic._native import lib
    from pytactic.lowlevel import NativeSession

    with NativeSession(path, n_ctx=64, n_threads=1, attention=lib.TACTIC_ATTN_FULL) as s:
        return s.eval(tokens, logits_all=True)


def rel_err(got, want):
    return float(np.abs(got - want).max() / np.abs(want).max())


CASES = {
    "llama3": ("llama3", {}),
    "llama2": ("llama2", {}),
    "mistral": ("mistral", {}),
    "qwen2": ("qwen2", {}),
    "qwen3": ("qwen3", {}),
    "gemma3": ("gemma3", {}),
    "llama31-rope": ("llama3", dict(rope_theta=500000.0, max_position_embeddings=512, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64})),
    "llama-linear-rope": ("llama2", dict(rope_scaling={"rope_type": "linear", "factor": 2.0})),
    "qwen2-yarn": ("qwen2", dict(rope_scaling={"rope_type": "yarn", "factor": 4.0,
                                               "original_max_position_embeddings": 64})),
    "qwen2-tied-mha": ("qwen2", dict(tie_word_embeddings=True, num_key_value_heads=4)),
    "gemma3-linear-softcap": ("gemma3", dict(rope_scaling={"rope_type": "linear", "factor": 8.0},
                                             final_logit_softcapping=3.0)),
    "gemma3-pattern3-scalar": ("gemma3", dict(num_hidden_layers=5, sliding_window=3, query_pre_attn_scalar=24,
                                              layer_types=["sliding_attention", "sliding_attention", "full_attention",
                                                           "sliding_attention", "sliding_attention"])),
}


@pytest.mark.parametrize("case", ["llama31-rope", "llama-linear-rope", "qwen2-yarn", "gemma3-linear-softcap"])
def test_reference_rope_matches_transformers(tmp_path, case):
    """hf_reference's scaled RoPE (the oracle for the cases above) against transformers'
    own ROPE_INIT_FUNCTIONS, so YaRN / linear / llama3 scaling is not checked only
    against a numpy forward of this project."""
    pytest.importorskip("torch", reason="torch is not installed (transformers' RoPE functions need it)")
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    import inspect

    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    arch, over = CASES[case]
    cfg, _ = cc.write_checkpoint(tmp_path / "m", arch, **over)
    config = transformers.AutoConfig.for_model(**cfg)
    fn = ROPE_INIT_FUNCTIONS[over["rope_scaling"]["rope_type"]]
    kw = {"layer_type": "full_attention"} if "layer_type" in inspect.signature(fn).parameters and arch == "gemma3" else {}
    inv, attn = fn(config, "cpu", **kw)
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    want_inv, want_attn = hf_reference.inv_freq_and_scale(cfg, head_dim)
    np.testing.assert_allclose(want_inv, inv.double().numpy(), rtol=1e-5)
    assert want_attn == pytest.approx(float(attn), rel=1e-6)


@pytest.mark.parametrize("case", list(CASES))
def test_f32_logits_match_hf(tmp_path, case):
    arch, over = CASES[case]
    cfg, w = cc.write_checkpoint(tmp_path / "m", arch, dtype="BF16", **over)
    res = convert(tmp_path / "m", tmp_path / "m.gguf", "f32")
    got = runtime_logits(res.path, TOKENS)
    want = hf_reference.forward(cfg, w, TOKENS)
    assert rel_err(got, want) < 1e-3
    assert np.array_equal(got.argmax(-1), want.argmax(-1))


# (outtype, max relative error of the logits) on a small model whose rows are 64 long.
# The second tolerance compares with the HF forward of the weights the GGUF holds
# (dequantized): what is left is the runtime's own rounding (8-bit activations for
# quantized matmuls, the f16 KV cache), so it checks that the converter wrote what it meant.
# Measured (tiny random models, rows of 64): f16 8e-4/5e-4, bf16 6e-3/4e-3, q8_0 2e-2/1.5e-2,
# q5_0 0.13/1.4e-2, q4_0 0.23/1.4e-2; 4- and 5-bit weights also flip some near-tied argmaxes.
QUANTIZED = [("f16", 3e-3, 3e-3, 0.75), ("bf16", 1.5e-2, 1e-2, 0.75), ("q8_0", 5e-2, 3e-2, 0.75),
             ("q5_0", 0.25, 3e-2, 0.5), ("q4_0", 0.4, 3e-2, 0.5)]

_GEMMA_NORMS = {"attn_norm": "input_layernorm", "post_attention_norm": "post_attention_layernorm",
                "ffn_norm": "pre_feedforward_layernorm", "post_ffw_norm": "post_feedforward_layernorm",
                "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm"}
_LAYER = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
          "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
          "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
          "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm"}


def gguf_weights_as_hf(path, cfg):
    """The GGUF's tensors, dequantized and mapped back to HF names and layouts."""
    import gguf

    gemma = cfg["architectures"][0] == "Gemma3ForCausalLM"
    llama = cfg["model_type"] in ("llama", "mistral")
    hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    out = {}
    for t in gguf.GGUFReader(path).tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).reshape([int(d) for d in reversed(t.shape)])
        w = w.astype(np.float32)
        parts = t.name.split(".")
        if parts[0] == "blk":
            kind, suffix = parts[2], parts[3]
            if llama and kind in ("attn_q", "attn_k"):  # undo the NORM-RoPE row permutation
                w = w.reshape(-1, hd // 2, 2, w.shape[1]).swapaxes(1, 2).reshape(w.shape)
            name = (_GEMMA_NORMS if gemma and kind in _GEMMA_NORMS else _LAYER)[kind]
            if gemma and kind in _GEMMA_NORMS:
                w = w - 1
            out[f"model.layers.{parts[1]}.{name}.{suffix}"] = w
        elif parts[0] == "token_embd":
            out["model.embed_tokens.weight"] = w
        elif parts[0] == "output_norm":
            out["model.norm.weight"] = w - 1 if gemma else w
        elif parts[0] == "output":
            out["lm_head.weight"] = w
    return out


@pytest.mark.parametrize("arch", ["llama3", "qwen2", "gemma3"])
@pytest.mark.parametrize("outtype,tol_hf,tol_held,top1", QUANTIZED)
def test_quantized_logits_close_to_hf(tmp_path, arch, outtype, tol_hf, tol_held, top1):
    cfg, w = cc.write_checkpoint(tmp_path / "m", arch)
    res = convert(tmp_path / "m", tmp_path / "m.gguf", outtype)
    got = runtime_logits(res.path, TOKENS)
    want = hf_reference.forward(cfg, w, TOKENS)
    assert rel_err(got, want) < tol_hf
    assert np.mean(got.argmax(-1) == want.argmax(-1)) >= top1
    held = hf_reference.forward(cfg, gguf_weights_as_hf(res.path, cfg), TOKENS)
    assert rel_err(got, held) < tol_held


@pytest.mark.parametrize("outtype,tol", [("q6_k", 3e-2), ("q4_k_m", 0.12), ("q4_k", 0.15), ("q5_k_m", 0.08)])
def test_k_quant_logits_close_to_hf(tmp_path, outtype, tol):
    """Rows of 256 so the K-quants apply (quantized by libtactic's tactic_quantize)."""
    cfg, w = cc.write_checkpoint(tmp_path / "m", "qwen3", hidden_size=256, intermediate_size=512,
                                 num_attention_heads=4, num_key_value_heads=2, head_dim=64, num_hidden_layers=3)
    res = convert(tmp_path / "m", tmp_path / "m.gguf", outtype)
    kinds = set(res.types.values())
    assert {"Q6_K"} <= kinds and "F32" in kinds
    got = runtime_logits(res.path, TOKENS)
    want = hf_reference.forward(cfg, w, TOKENS)
    assert rel_err(got, want) < tol
    assert np.mean(got.argmax(-1) == want.argmax(-1)) >= 0.75
    held = hf_reference.forward(cfg, gguf_weights_as_hf(res.path, cfg), TOKENS)
    assert rel_err(got, held) < 3e-2
