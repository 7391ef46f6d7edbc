"""scripts/make_random_gguf.py: the file it writes is what it says (read back by the
gguf package, an independent reader and dequantizer), its weights are the seeded draw
its docstring specifies (re-derived here with numpy), pytactic runs every
architecture, and llama.cpp (through llama-cpp-python, when installed) loads the file
and agrees with pytactic's greedy tokens."""

import importlib.util
import zlib
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q

import pytactic
from llama_cpp_runner import greedy

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "make_random_gguf.py"
_spec = importlib.util.spec_from_file_location("make_random_gguf", SCRIPT)
mrg = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mrg)

# Tiny shapes: 256 wide so that K-quants apply (a 256 multiple), 2 layers.
TINY = dict(n_layer=2, n_embd=256, n_head=4, n_head_kv=2, n_ff=512, vocab=600, head_dim=64)
PRESET = {"llama": "llama-3.1-8b", "llama-tied": "llama-3.2-1b", "qwen2": "qwen2.5-0.5b",
          "qwen3": "qwen3-0.6b", "gemma3": "gemma-3-270m"}

# What each architecture's file holds per layer (GGUF names, as llama.cpp spells them).
LAYER = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]
LAYER_EXTRA = {
    "llama": ["ffn_norm"], "llama-tied": ["ffn_norm"],
    "qwen2": ["ffn_norm", "attn_q.bias", "attn_k.bias", "attn_v.bias"],
    "qwen3": ["ffn_norm", "attn_q_norm", "attn_k_norm"],
    "gemma3": ["ffn_norm", "post_attention_norm", "post_ffw_norm", "attn_q_norm", "attn_k_norm"],
}
NORM_NAMES = ("attn_norm", "ffn_norm", "post_attention_norm", "post_ffw_norm", "attn_q_norm", "attn_k_norm",
              "output_norm")


def make(tmp_path, arch, outtype, name=None, **kw):
    out = tmp_path / (name or f"{arch}-{outtype}.gguf")
    mrg.make_random_gguf(out, PRESET[arch], outtype, **{**TINY, **kw})
    return out


def expected_names(arch):
    names = {"token_embd.weight", "output_norm.weight"}
    if arch == "llama":
        names |= {"output.weight", "rope_freqs.weight"}  # untied; Llama 3.1 RoPE scaling
    if arch == "llama-tied":
        names.add("rope_freqs.weight")
    for il in range(TINY["n_layer"]):
        for t in LAYER + LAYER_EXTRA[arch]:
            names.add(f"blk.{il}.{t}" + ("" if t.endswith(".bias") else ".weight"))
    return names


def fields(reader):
    return {k: f.contents() for k, f in reader.fields.items()
            if k not in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type")}


@pytest.mark.parametrize("arch", list(PRESET))
def test_gguf_reader_sees_the_architecture(tmp_path, arch):
    path = make(tmp_path, arch, "q4_k_m")
    r = gguf.GGUFReader(path)
    f = fields(r)
    gguf_arch = "llama" if arch.startswith("llama") else arch
    E, L, hd = TINY["n_embd"], TINY["n_layer"], TINY["head_dim"]
    assert f["general.architecture"] == gguf_arch
    assert f[f"{gguf_arch}.block_count"] == L
    assert f[f"{gguf_arch}.embedding_length"] == E
    assert f[f"{gguf_arch}.feed_forward_length"] == TINY["n_ff"]
    assert f[f"{gguf_arch}.attention.head_count"] == TINY["n_head"]
    assert f[f"{gguf_arch}.attention.head_count_kv"] == TINY["n_head_kv"]
    assert f["general.file_type"] == int(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    assert f["tokenizer.ggml.model"] == "llama"
    assert (f["tokenizer.ggml.unknown_token_id"], f["tokenizer.ggml.bos_token_id"],
            f["tokenizer.ggml.eos_token_id"]) == (0, 1, 2)
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    assert len(tokens) == TINY["vocab"]
    assert tokens[:3] == ["<unk>", "<s>", "</s>"] and tokens[3 + 0x41] == "<0x41>"
    if arch == "gemma3":
        assert f["gemma3.attention.sliding_window"] == 512
        assert f["gemma3.attention.key_length"] == hd

    tensors = {t.name: t for t in r.tensors}
    assert set(tensors) == expected_names(arch)
    # GGUF shapes are innermost-first: [n_in, n_out]
    assert list(tensors["blk.0.attn_q.weight"].shape) == [E, TINY["n_head"] * hd]
    assert list(tensors["blk.1.attn_k.weight"].shape) == [E, TINY["n_head_kv"] * hd]
    assert list(tensors["blk.0.ffn_down.weight"].shape) == [TINY["n_ff"], E]
    assert list(tensors["token_embd.weight"].shape) == [E, TINY["vocab"]]
    # llama.cpp's Q4_K_M: Q4_K by default; Q6_K for the output (or the tied embedding) and
    # for attn_v/ffn_down in the layers use_more_bits picks (of 2 layers: the last); F32 1-D.
    out_name = "output.weight" if arch == "llama" else "token_embd.weight"
    assert tensors[out_name].tensor_type == Q.Q6_K
    for il, want in ((0, Q.Q4_K), (1, Q.Q6_K)):
        assert tensors[f"blk.{il}.attn_v.weight"].tensor_type == want
        assert tensors[f"blk.{il}.ffn_down.weight"].tensor_type == want
        assert tensors[f"blk.{il}.attn_q.weight"].tensor_type == Q.Q4_K
        assert tensors[f"blk.{il}.attn_norm.weight"].tensor_type == Q.F32


def test_row_length_not_a_multiple_of_256_falls_back_as_llama_cpp(tmp_path):
    """Qwen2.5-0.5B's 896-wide rows cannot be Q4_K: llama.cpp's Q4_K_M uses Q5_0 there."""
    path = make(tmp_path, "qwen2", "q4_k_m", n_embd=896, n_head=14, n_head_kv=2)
    tensors = {t.name: t for t in gguf.GGUFReader(path).tensors}
    assert tensors["blk.0.attn_q.weight"].tensor_type == Q.Q5_0
    assert tensors["blk.0.ffn_down.weight"].tensor_type == Q.Q4_K  # 512 per row
    assert tensors["token_embd.weight"].tensor_type == Q.Q8_0  # Q6_K -> Q8_0


def drawn(name, shape, seed, std):
    """The docstring's rule, re-derived: chunks of 256 rows, each from its own generator."""
    rows, cols = (1, shape[0]) if len(shape) == 1 else shape
    parts = []
    for c, r0 in enumerate(range(0, rows, 256)):
        rng = np.random.default_rng([seed, zlib.crc32(name.encode()), c])
        parts.append(rng.standard_normal((min(256, rows - r0), cols), dtype=np.float32) * np.float32(std))
    return np.concatenate(parts).reshape(shape)


def dequantized(path):
    r = gguf.GGUFReader(path)
    out = {}
    for t in r.tensors:
        shape = tuple(int(d) for d in reversed(t.shape))
        out[t.name] = (gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape), t.tensor_type)
    return out


def test_f16_weights_are_the_seeded_draw(tmp_path):
    path = make(tmp_path, "qwen2", "f16", n_layer=2, seed=7, scale=0.03, output_scale=0.5, qk_scale=2.0,
                vocab=700)  # 700 rows: three chunks, the last one short
    got = dequantized(path)
    assert got["blk.0.attn_q.weight"][1] == Q.F16
    for name, (w, _) in got.items():
        if any(name.endswith(n + ".weight") for n in NORM_NAMES):
            assert np.all(w == 1), name
            continue
        std = 0.03
        if name == "token_embd.weight":  # tied output
            std = 0.5
        elif name.endswith(("attn_q.weight", "attn_k.weight")):
            std = 0.06
        want = drawn(name, w.shape, 7, std)
        if w.ndim == 1:  # biases stay F32
            np.testing.assert_array_equal(w, want, err_msg=name)
        else:
            np.testing.assert_allclose(w, want.astype(np.float16).astype(np.float32), rtol=0, atol=0,
                                       err_msg=name)


def test_shared_layers_hold_the_same_matrices(tmp_path):
    path = make(tmp_path, "llama", "q8_0", seed=3, share_layers=True)
    got = dequantized(path)
    for t in ("attn_q", "attn_v", "ffn_down"):
        a, b = got[f"blk.0.{t}.weight"][0], got[f"blk.1.{t}.weight"][0]
        np.testing.assert_array_equal(a, b)
        want = drawn(f"blk.*.{t}.weight", a.shape, 3, 0.02)
        # Q8_0: a step of max|x|/127 per block of 32, so the error is under 1% of std in rms
        assert np.sqrt(np.mean((a - want) ** 2)) < 0.01 * 0.02, t
    # the unshared file differs from layer to layer
    got2 = dequantized(make(tmp_path, "llama", "q8_0", name="unshared.gguf", seed=3))
    assert not np.array_equal(got2["blk.0.attn_q.weight"][0], got2["blk.1.attn_q.weight"][0])


# rms rounding error / std of Gaussian weights (measured: 0.072, 0.036, 0.018, 0.087, 0.0053)
REL_RMS = {Q.Q4_K: 0.09, Q.Q5_K: 0.045, Q.Q6_K: 0.025, Q.Q4_0: 0.1, Q.Q8_0: 0.008}


@pytest.mark.parametrize("outtype", ["q4_k_m", "q5_k_m", "q6_k", "q4_0"])
def test_quantized_weights_are_the_draw_within_quantization_error(tmp_path, outtype):
    """Dequantized by the gguf package (an independent implementation of the formats),
    each matrix is its seeded draw within the type's rounding error."""
    path = make(tmp_path, "llama", outtype, seed=1)
    for name, (w, qtype) in dequantized(path).items():
        if w.ndim == 1:
            continue
        err = np.sqrt(np.mean((w - drawn(name, w.shape, 1, 0.02)) ** 2)) / 0.02
        assert err < REL_RMS[qtype], (name, qtype.name, err)


@pytest.mark.parametrize("arch", list(PRESET))
def test_pytactic_runs_every_architecture(tmp_path, arch):
    path = make(tmp_path, arch, "q4_k_m", output_scale=0.3)
    with pytactic.Model(path, n_ctx=64, n_threads=1) as m:
        assert m.architecture == ("llama" if arch.startswith("llama") else arch)
        assert m.n_vocab == TINY["vocab"] and m.info.n_layer == TINY["n_layer"]
        # the SentencePiece vocabulary has only byte tokens for this text: bos, then
        # the bytes of "\u2581hello\u2581world" (the space prefix and spaces as U+2581)
        text = "hello world"
        assert m.tokenize(text) == [1] + [3 + b for b in ("\u2581" + text.replace(" ", "\u2581")).encode()]
        m.eval([1, 40, 300, 599, 7], logits_all=True)
        rows = np.stack([m.logits(i) for i in range(5)])
        assert np.all(np.isfinite(rows))
        assert rows.std(axis=-1).min() > 0.1  # the output is not flat
        assert len({int(a) for a in rows.argmax(-1)}) > 1  # and depends on the input


@pytest.mark.parametrize("outtype", [t for t in mrg.OUTTYPES if t not in ("q4_k_m", "q5_k_m")])
def test_every_type_is_written_and_runs(tmp_path, outtype):
    """Each --type gives its GGML type to the matrices (gguf reads it) and pytactic runs it."""
    path = make(tmp_path, "llama-tied", outtype, n_layer=1)
    tensors = {t.name: t for t in gguf.GGUFReader(path).tensors}
    assert tensors["blk.0.ffn_up.weight"].tensor_type.name == outtype.upper()
    with pytactic.Model(path, n_ctx=32, n_threads=1) as m:
        m.eval([1, 40, 300])
        assert np.all(np.isfinite(m.logits()))


def test_options_are_checked():
    with pytest.raises(SystemExit, match="unknown preset"):
        mrg.make_config("llama-9000")
    with pytest.raises(SystemExit, match="--vocab must be at least"):
        mrg.make_config("llama-3.2-1b", vocab=100)
    with pytest.raises(SystemExit, match="unknown type"):
        mrg.make_random_gguf("/nonexistent/x.gguf", "llama-3.2-1b", "q3_xl")


def test_command_line(tmp_path, capsys):
    out = tmp_path / "cli.gguf"
    assert mrg.main(["-o", str(out), "--preset", "qwen3-0.6b", "--type", "q8_0", "--n-layer", "1",
                     "--n-embd", "128", "--n-head", "2", "--n-head-kv", "1", "--head-dim", "64",
                     "--n-ff", "256", "--vocab", "300", "--no-tie", "--threads", "2"]) == 0
    assert "wrote" in capsys.readouterr().out
    f = fields(gguf.GGUFReader(out))
    assert f["qwen3.block_count"] == 1 and f["qwen3.embedding_length"] == 128
    names = {t.name for t in gguf.GGUFReader(out).tensors}
    assert "output.weight" in names  # --no-tie


# -- llama.cpp ------------------------------------------------------------------------

PROMPT = [1, 40, 300, 599, 7, 123]
N_GEN = 16
# Near-ties are not compared. Measured on these files: pytactic's logits are within 0.01
# of llama.cpp's for F16 and 0.1-0.3 for the K-quant mixes from position 1 on (position 0
# is exact), against a logit std of about 5; a step counts when its margin is twice that.
MIN_GAP = 0.6


@pytest.mark.parametrize("arch,outtype", [("llama", "q4_k_m"), ("llama-tied", "f16"), ("qwen2", "q4_k_m"),
                                          ("qwen3", "q5_k_m"), ("gemma3", "q4_k_m")])
def test_llama_cpp_loads_it_and_agrees(tmp_path, arch, outtype):
    """llama.cpp's greedy tokens, teacher-forced through pytactic: pytactic's argmax is
    llama.cpp's token at every step with a top-2 margin above MIN_GAP."""
    try:
        import llama_cpp
    except ImportError:
        pytest.skip("llama-cpp-python is not installed (pip install llama-cpp-python)")
    path = make(tmp_path, arch, outtype, output_scale=0.3, qk_scale=4.0)
    theirs = greedy(llama_cpp, path, PROMPT, N_GEN)
    assert len(theirs) == N_GEN
    with pytactic.Model(path, n_ctx=64, n_threads=1) as m:
        m.eval(PROMPT + theirs[:-1], logits_all=True)
        logits = np.stack([m.logits(i) for i in range(len(PROMPT) - 1, len(PROMPT) + N_GEN - 1)])
    top2 = np.sort(logits, axis=-1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > MIN_GAP
    assert clear.sum() >= N_GEN // 2, "the random model is too near-tied to compare"
    ours = logits.argmax(-1)
    assert np.array_equal(ours[clear], np.array(theirs)[clear]), (ours.tolist(), theirs)
