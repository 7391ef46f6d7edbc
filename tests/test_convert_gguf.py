"""The converter's GGUF contents, read back with gguf.GGUFReader: keys, tensor names,
types and shapes, the per-architecture fixes, and the exported tokenizers."""


import gguf
import numpy as np
import pytest

import convert_checkpoints as cc
import hf_reference
from pytactic.convert import convert
from pytactic.convert.hparams import read_hparams
from pytactic.convert.quantize import choose_types, use_more_bits
from pytactic.convert.tensor_map import T, TensorPlan, permute_for_norm_rope

Q = gguf.GGMLQuantizationType


def read(path):
    r = gguf.GGUFReader(path)
    kv = {}
    for f in r.fields.values():
        if f.name.startswith("GGUF."):
            continue
        kv[f.name] = f.contents()
    tensors = {t.name: t for t in r.tensors}
    return kv, tensors


def tensor_f32(t):
    return gguf.quants.dequantize(t.data, t.tensor_type).reshape([int(d) for d in reversed(t.shape)])


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Each architecture, BF16 checkpoint, converted to f32 (so values compare exactly)."""
    base = tmp_path_factory.mktemp("ckpt")
    out = {}
    for arch in cc.ARCH_CONFIGS:
        cfg, w = cc.write_checkpoint(base / arch, arch, dtype="BF16")
        res = convert(base / arch, base / f"{arch}.gguf", "f32")
        out[arch] = (cfg, w, res) + read(res.path)
    return out


@pytest.mark.parametrize("arch,gguf_arch", [("llama3", "llama"), ("llama2", "llama"), ("mistral", "llama"),
                                            ("qwen2", "qwen2"), ("qwen3", "qwen3"), ("gemma3", "gemma3")])
def test_hyperparameters(converted, arch, gguf_arch):
    cfg, _, res, kv, _ = converted[arch]
    a = gguf_arch
    assert kv["general.architecture"] == a and res.arch == a
    assert kv[f"{a}.context_length"] == cfg["max_position_embeddings"]
    assert kv[f"{a}.embedding_length"] == cfg["hidden_size"]
    assert kv[f"{a}.block_count"] == cfg["num_hidden_layers"]
    assert kv[f"{a}.feed_forward_length"] == cfg["intermediate_size"]
    assert kv[f"{a}.attention.head_count"] == cfg["num_attention_heads"]
    assert kv[f"{a}.attention.head_count_kv"] == cfg["num_key_value_heads"]
    assert kv[f"{a}.attention.layer_norm_rms_epsilon"] == pytest.approx(cfg["rms_norm_eps"])
    assert kv[f"{a}.rope.freq_base"] == pytest.approx(cfg["rope_theta"])
    assert kv["general.file_type"] == gguf.LlamaFileType.ALL_F32
    assert kv["general.name"] == arch and kv["general.size_label"].endswith("K")
    hd = cfg.get("head_dim")
    if hd:
        assert kv[f"{a}.attention.key_length"] == hd == kv[f"{a}.attention.value_length"]
    if a == "gemma3":
        assert kv["gemma3.attention.sliding_window"] == cfg["sliding_window"]
        assert "gemma3.attention.sliding_window_pattern" not in kv  # the default period 6
        assert "gemma3.attention.scale" not in kv  # query_pre_attn_scalar == head_dim


def test_tensor_names_types_and_tying(converted):
    for arch, (cfg, w, res, kv, tensors) in converted.items():
        n_layer = cfg["num_hidden_layers"]
        assert ("output.weight" in tensors) == (not cfg["tie_word_embeddings"]), arch
        assert len(tensors) == len(w) - ("lm_head.weight" in w and cfg["tie_word_embeddings"])
        for name, t in tensors.items():
            assert t.tensor_type == Q.F32
        assert f"blk.{n_layer - 1}.ffn_down.weight" in tensors
        emb = tensors["token_embd.weight"]
        assert list(emb.shape) == [cfg["hidden_size"], cfg["vocab_size"]]  # ggml order: ne0 first


def test_values_and_fixes(converted):
    # llama: Q/K rows permuted per head; everything else verbatim.
    cfg, w, _, _, tensors = converted["llama3"]
    hd = cfg["hidden_size"] // cfg["num_attention_heads"]
    q_hf = w["model.layers.1.self_attn.q_proj.weight"]
    q = tensor_f32(tensors["blk.1.attn_q.weight"])
    for head in range(cfg["num_attention_heads"]):
        for i in range(hd // 2):
            np.testing.assert_array_equal(q[head * hd + 2 * i], q_hf[head * hd + i])
            np.testing.assert_array_equal(q[head * hd + 2 * i + 1], q_hf[head * hd + i + hd // 2])
    k = tensor_f32(tensors["blk.0.attn_k.weight"])
    np.testing.assert_array_equal(k, permute_for_norm_rope(w["model.layers.0.self_attn.k_proj.weight"], 2))
    np.testing.assert_array_equal(tensor_f32(tensors["blk.0.attn_v.weight"]), w["model.layers.0.self_attn.v_proj.weight"])
    np.testing.assert_array_equal(tensor_f32(tensors["output.weight"]), w["lm_head.weight"])
    np.testing.assert_array_equal(tensor_f32(tensors["blk.0.ffn_norm.weight"]),
                                  w["model.layers.0.post_attention_layernorm.weight"])

    # qwen: no permutation; biases kept F32.
    cfg, w, _, _, tensors = converted["qwen2"]
    np.testing.assert_array_equal(tensor_f32(tensors["blk.0.attn_q.weight"]), w["model.layers.0.self_attn.q_proj.weight"])
    np.testing.assert_array_equal(tensor_f32(tensors["blk.0.attn_k.bias"]), w["model.layers.0.self_attn.k_proj.bias"])

    # gemma3: +1 on all six norm kinds, nothing else changed.
    cfg, w, _, _, tensors = converted["gemma3"]
    pairs = {"attn_norm": "input_layernorm", "post_attention_norm": "post_attention_layernorm",
             "ffn_norm": "pre_feedforward_layernorm", "post_ffw_norm": "post_feedforward_layernorm",
             "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm"}
    for il in range(cfg["num_hidden_layers"]):
        for g, h in pairs.items():
            np.testing.assert_array_equal(tensor_f32(tensors[f"blk.{il}.{g}.weight"]),
                                          w[f"model.layers.{il}.{h}.weight"] + np.float32(1))
    np.testing.assert_array_equal(tensor_f32(tensors["output_norm.weight"]), w["model.norm.weight"] + np.float32(1))
    np.testing.assert_array_equal(tensor_f32(tensors["blk.3.attn_q.weight"]), w["model.layers.3.self_attn.q_proj.weight"])


def test_bpe_tokenizer_export(converted):
    _, _, _, kv, _ = converted["llama3"]
    tj, specials = cc.bpe_tokenizer_json("llama3")
    assert kv["tokenizer.ggml.model"] == "gpt2"
    assert kv["tokenizer.ggml.pre"] == "llama-bpe"
    toks = kv["tokenizer.ggml.tokens"]
    assert toks[:256] == [cc.bytes_to_unicode()[b] for b in range(256)]
    assert kv["tokenizer.ggml.merges"] == tj["model"]["merges"]
    n_bpe = len(tj["model"]["vocab"])
    assert toks[n_bpe:] == specials
    types = kv["tokenizer.ggml.token_type"]
    assert set(types[:n_bpe]) == {1} and types[n_bpe:] == [3, 3, 3]
    assert kv["tokenizer.ggml.bos_token_id"] == n_bpe  # <|begin_of_text|>
    assert kv["tokenizer.ggml.eos_token_id"] == n_bpe + 2  # <|eot_id|> per tokenizer_config
    assert kv["tokenizer.ggml.eot_token_id"] == n_bpe + 2
    assert kv["tokenizer.ggml.add_bos_token"] is True  # from the TemplateProcessing post-processor

    _, _, _, kv, _ = converted["qwen2"]
    assert kv["tokenizer.ggml.pre"] == "qwen2"
    assert kv["tokenizer.ggml.add_bos_token"] is False
    assert "tokenizer.ggml.bos_token_id" not in kv
    assert kv["tokenizer.chat_template"].startswith("{% for m in messages %}<|im_start|>")
    assert kv["tokenizer.ggml.tokens"][kv["tokenizer.ggml.eos_token_id"]] == "<|im_end|>"
    assert kv["tokenizer.ggml.tokens"][kv["tokenizer.ggml.padding_token_id"]] == "<|endoftext|>"


def test_spm_tokenizer_export(converted):
    _, _, _, kv, _ = converted["gemma3"]
    pieces = cc.spm_pieces("gemma")
    assert kv["tokenizer.ggml.model"] == "llama"
    assert kv["tokenizer.ggml.add_space_prefix"] is False
    assert kv["tokenizer.ggml.tokens"][7:] == [p for p, _, _ in pieces[7:]]
    assert kv["tokenizer.ggml.tokens"][6] == "\n\n"
    assert kv["tokenizer.ggml.token_type"][:7] == [3, 3, 3, 3, 3, 3, 4]
    assert kv["tokenizer.ggml.token_type"][7:7 + 256] == [6] * 256
    np.testing.assert_allclose(kv["tokenizer.ggml.scores"][7:], [s for _, s, _ in pieces[7:]])
    assert kv["tokenizer.ggml.scores"][:7] == [-1000.0] * 7  # tokenizer_config's added tokens
    assert (kv["tokenizer.ggml.bos_token_id"], kv["tokenizer.ggml.eos_token_id"]) == (2, 1)
    assert (kv["tokenizer.ggml.unknown_token_id"], kv["tokenizer.ggml.padding_token_id"]) == (3, 0)
    assert kv["tokenizer.ggml.eot_token_id"] == 5
    assert kv["tokenizer.ggml.add_bos_token"] is True and kv["tokenizer.ggml.add_eos_token"] is False
    assert kv["tokenizer.chat_template"].startswith("{{ bos_token }}")  # from chat_template.jinja

    _, _, _, kv, _ = converted["llama2"]
    assert kv["tokenizer.ggml.add_space_prefix"] is True
    assert kv["tokenizer.ggml.token_type"][:3] == [2, 3, 3]
    assert (kv["tokenizer.ggml.bos_token_id"], kv["tokenizer.ggml.eos_token_id"]) == (1, 2)
    assert kv["tokenizer.ggml.unknown_token_id"] == 0
    assert "tokenizer.chat_template" not in kv


def test_sharded_f16_and_padded_vocab(tmp_path):
    n_tok = cc.tokenizer_vocab_size("qwen2")
    cfg, w = cc.write_checkpoint(tmp_path / "m", "qwen2", dtype="F16", shards=3, vocab_size=n_tok + 5)
    assert len(list((tmp_path / "m").glob("*.safetensors"))) == 3
    res = convert(tmp_path / "m", tmp_path / "m.gguf", "f32")
    kv, tensors = read(res.path)
    toks, types = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"]
    assert len(toks) == n_tok + 5 == len(types)
    assert toks[-1] == f"[PAD{n_tok + 4}]" and types[-5:] == [5] * 5
    np.testing.assert_array_equal(tensor_f32(tensors["blk.2.attn_v.bias"]) if "blk.2.attn_v.bias" in tensors
                                  else tensor_f32(tensors["blk.1.attn_v.bias"]), w["model.layers.1.self_attn.v_proj.bias"])
    np.testing.assert_array_equal(tensor_f32(tensors["blk.1.ffn_up.weight"]), w["model.layers.1.mlp.up_proj.weight"])


def test_llama31_rope_freqs(tmp_path):
    rs = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 64}
    cfg, _ = cc.write_checkpoint(tmp_path / "m", "llama3", rope_scaling=rs, rope_theta=500000.0)
    kv, tensors = read(convert(tmp_path / "m", tmp_path / "m.gguf", "q8_0").path)
    assert not any(k.startswith("llama.rope.scaling") for k in kv)
    t = tensors["rope_freqs.weight"]
    assert t.tensor_type == Q.F32 and list(t.shape) == [8]
    f = tensor_f32(t)
    # High frequencies untouched, the lowest divided by the factor, a smooth ramp between.
    assert f[0] == 1.0 and f[-1] == pytest.approx(8.0)
    assert np.all(np.diff(f) >= 0)
    # Against the tests' own twin of transformers' llama3 RoPE (hf_reference, checked
    # against transformers itself in test_convert_logits where torch is installed),
    # not the converter's function: rope_freqs divides the plain inverse frequencies.
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    plain, _ = hf_reference.inv_freq_and_scale({**cfg, "rope_scaling": None}, head_dim)
    scaled, _ = hf_reference.inv_freq_and_scale(cfg, head_dim)
    np.testing.assert_allclose(f, plain / scaled, rtol=1e-6)


def test_rope_scaling_keys(tmp_path):
    cc.write_checkpoint(tmp_path / "lin", "llama2", rope_scaling={"rope_type": "linear", "factor": 2.0})
    kv, _ = read(convert(tmp_path / "lin", tmp_path / "lin.gguf", "f16").path)
    assert kv["llama.rope.scaling.type"] == "linear" and kv["llama.rope.scaling.factor"] == 2.0
    cc.write_checkpoint(tmp_path / "yarn", "qwen2",
                        rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64})
    kv, _ = read(convert(tmp_path / "yarn", tmp_path / "yarn.gguf", "f16").path)
    assert kv["qwen2.rope.scaling.type"] == "yarn" and kv["qwen2.rope.scaling.factor"] == 4.0
    assert kv["qwen2.rope.scaling.original_context_length"] == 64
    # transformers 5 layout: rope_parameters per layer type (gemma3), layer_types with another period.
    cfg = cc.make_config("gemma3", num_hidden_layers=6,
                         layer_types=["sliding_attention", "sliding_attention", "full_attention"] * 2,
                         rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
                                          "sliding_attention": {"rope_type": "default", "rope_theta": 20000.0}},
                         query_pre_attn_scalar=64)
    hp = read_hparams(cfg)
    assert hp.swa_period == 3 and hp.rope_base_swa == 20000.0 and hp.rope_scaling.factor == 8.0
    assert hp.attn_scale == pytest.approx(64 ** -0.5)


def test_outtypes_and_fallbacks(tmp_path):
    cc.write_checkpoint(tmp_path / "m", "llama3", dtype="BF16")
    for outtype, weight_type, ftype in [("f16", Q.F16, 1), ("bf16", Q.BF16, 32), ("q8_0", Q.Q8_0, 7), ("q4_0", Q.Q4_0, 2)]:
        kv, tensors = read(convert(tmp_path / "m", tmp_path / f"{outtype}.gguf", outtype).path)
        assert kv["general.file_type"] == ftype
        assert tensors["blk.0.attn_q.weight"].tensor_type == weight_type
        assert tensors["blk.0.attn_norm.weight"].tensor_type == Q.F32
        assert tensors["output_norm.weight"].tensor_type == Q.F32
        if outtype == "q4_0":
            assert tensors["output.weight"].tensor_type == Q.Q8_0
        if outtype == "bf16":  # bf16 source -> bf16 output is exact
            np.testing.assert_array_equal(tensor_f32(tensors["blk.1.ffn_up.weight"]),
                                          cc.bf16_round(cc.make_weights(cc.make_config("llama3"))["model.layers.1.mlp.up_proj.weight"]))


def _plans_like(shapes):
    """TensorPlans with the given names and [out, in] shapes (no data)."""
    kinds = {"token_embd": T.TOKEN_EMBD, "output": T.OUTPUT, "attn_q": T.ATTN_Q, "attn_k": T.ATTN_K,
             "attn_v": T.ATTN_V, "attn_output": T.ATTN_OUT, "ffn_gate": T.FFN_GATE, "ffn_up": T.FFN_UP,
             "ffn_down": T.FFN_DOWN}
    plans = []
    for name, shape in shapes.items():
        parts = name.split(".")
        layer = int(parts[1]) if parts[0] == "blk" else None
        kind = kinds.get(parts[2] if layer is not None else parts[0], T.ATTN_NORM)
        plans.append(TensorPlan(name, shape, kind, layer, lambda: None, name))
    return plans


@pytest.mark.slow
def test_q4_k_m_mix_matches_llama_cpp(gemma_path):
    """Our Q4_K_M type choice, applied to the shapes of llama.cpp's own
    gemma-3-270m Q4_K_M file, reproduces every tensor type in that file."""
    r = gguf.GGUFReader(gemma_path)
    shapes = {t.name: tuple(int(d) for d in reversed(t.shape)) for t in r.tensors}
    want = {t.name: Q(t.tensor_type) for t in r.tensors}
    n_layer = int(r.fields["gemma3.block_count"].contents())
    got = choose_types(_plans_like(shapes), "q4_k_m", n_layer)
    assert got == want


def test_use_more_bits_layers():
    assert [i for i in range(18) if use_more_bits(i, 18)] == [0, 1, 4, 7, 10, 13, 15, 16, 17]


def test_k_mix_without_256_multiple_falls_back():
    shapes = {"token_embd.weight": (300, 64), "blk.0.attn_v.weight": (64, 64), "blk.0.attn_q.weight": (64, 64),
              "blk.0.ffn_down.weight": (64, 512), "blk.0.attn_norm.weight": (64,)}
    got = choose_types(_plans_like(shapes), "q4_k_m", 1)
    assert got == {"token_embd.weight": Q.Q8_0, "blk.0.attn_v.weight": Q.Q8_0, "blk.0.attn_q.weight": Q.Q5_0,
                   "blk.0.ffn_down.weight": Q.Q6_K, "blk.0.attn_norm.weight": Q.F32}
    got = choose_types(_plans_like({"blk.0.attn_q.weight": (64, 48)}), "q8_0", 1)
    assert got == {"blk.0.attn_q.weight": Q.F16}


def test_cli(tmp_path, capsys):
    from pytactic.convert.__main__ import main

    cc.write_checkpoint(tmp_path / "m", "qwen3")
    assert main([str(tmp_path / "m"), "--outfile", str(tmp_path / "o.gguf"), "--outtype", "Q8_0", "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().out
    kv, tensors = read(tmp_path / "o.gguf")
    assert kv["general.architecture"] == "qwen3" and tensors["blk.0.attn_q.weight"].tensor_type == Q.Q8_0


def test_peak_memory_near_one_tensor(tmp_path):
    """Tensors are read, converted and written one at a time: the conversion's peak
    allocation is a few times the largest tensor, not the model."""
    import tracemalloc

    cfg, w = cc.write_checkpoint(tmp_path / "m", "llama2", dtype="BF16", hidden_size=256,
                                 intermediate_size=512, num_hidden_layers=12)
    total, largest = sum(v.nbytes for v in w.values()), max(v.nbytes for v in w.values())
    del w
    tracemalloc.start()
    try:
        convert(tmp_path / "m", tmp_path / "m.gguf", "q8_0")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total > 50 * largest
    assert peak < 4 * largest + (1 << 20), (peak, largest, total)
