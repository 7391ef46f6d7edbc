"""Tiny random-weight HF checkpoints for the converter tests: config.json, safetensors
(written by hand, so no torch), and tokenizers (a byte-level BPE tokenizer.json and a
SentencePiece tokenizer.model protobuf), for each supported architecture."""

from __future__ import annotations

import json
import struct
from collections import Counter
from pathlib import Path

import numpy as np

CORPUS = (
    "The quick brown fox jumps over the lazy dog. Hello world! Hello there, "
    "how are you? I'm fine, thanks. Numbers 12345 and 678. The sky is blue and "
    "the grass is green. Tokenizers split text into pieces."
)

# ---------------------------------------------------------------- safetensors


def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even f32 -> bf16 bit patterns."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_round(x: np.ndarray) -> np.ndarray:
    return (f32_to_bf16_bits(x).astype(np.uint32) << 16).view(np.float32)


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], dtype: str = "F32") -> None:
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        if dtype == "BF16":
            raw = f32_to_bf16_bits(arr).tobytes()
        elif dtype == "F16":
            raw = arr.astype("<f2").tobytes()
        else:
            raw = arr.astype("<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------- byte-level BPE


def bytes_to_unicode() -> dict[int, str]:
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _train_merges(words: list[list[str]], n_merges: int) -> list[tuple[str, str]]:
    merges = []
    for _ in range(n_merges):
        pairs = Counter()
        for w in words:
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += 1
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        new_words = []
        for w in words:
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words.append(out)
        words = new_words
    return merges


LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = LLAMA3_REGEX.replace(r"\p{N}{1,3}", r"\p{N}")


def bpe_tokenizer_json(style: str, n_merges: int = 40) -> tuple[dict, list[str]]:
    """A byte-level BPE tokenizer.json; style: llama3, qwen2 or gpt2. Returns it and
    the special token texts (appended after the BPE vocab)."""
    b2u = bytes_to_unicode()
    words = [[b2u[b] for b in (" " + w).encode()] for w in CORPUS.split()]
    merges = _train_merges(words, n_merges)
    vocab = {b2u[b]: b for b in range(256)}
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    specials = {
        "llama3": ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"],
        "qwen2": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        "gpt2": ["<|endoftext|>"],
    }[style]
    added = [{"id": len(vocab) + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in enumerate(specials)]
    bytelevel = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    if style == "gpt2":
        pre = dict(bytelevel, use_regex=True)
    else:
        regex = LLAMA3_REGEX if style == "llama3" else QWEN2_REGEX
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
            bytelevel]}
    post = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}
    if style == "llama3":
        post = {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                      {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                      {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>",
                                                      "ids": [len(vocab)], "tokens": ["<|begin_of_text|>"]}}}]}
    tj = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "NFC"} if style == "qwen2" else None,
        "pre_tokenizer": pre,
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": style == "llama3", "vocab": vocab,
                  "merges": [f"{a} {b}" for a, b in merges]},
    }
    return tj, specials


# ---------------------------------------------------------------- SentencePiece


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, wire: int, payload: bytes) -> bytes:
    return _varint(num << 3 | wire) + payload


def _string(num: int, s: bytes) -> bytes:
    return _field(num, 2, _varint(len(s)) + s)


def spm_model_bytes(pieces: list[tuple[str, float, int]], add_dummy_prefix: bool, model_type: int = 2) -> bytes:
    """Serialize a ModelProto with the fields the converter and sentencepiece need."""
    out = bytearray()
    for text, score, ptype in pieces:
        p = _string(1, text.encode()) + _field(2, 5, struct.pack("<f", score)) + _field(3, 0, _varint(ptype))
        out += _string(1, p)
    trainer = (_field(3, 0, _varint(model_type)) + _field(35, 0, _varint(1))  # byte_fallback
               + _field(40, 0, _varint(0)) + _field(41, 0, _varint(1)) + _field(42, 0, _varint(2))
               + _field(43, 0, _varint(0xFFFFFFFFFFFFFFFF)))  # unk/bos/eos/pad ids (pad = -1)
    out += _string(2, trainer)
    norm = (_string(1, b"identity") + _field(3, 0, _varint(int(add_dummy_prefix)))
            + _field(4, 0, _varint(0)) + _field(5, 0, _varint(1)))
    out += _string(3, norm)
    return bytes(out)


def spm_pieces(style: str, n_merges: int = 60) -> list[tuple[str, float, int]]:
    """style llama2: <unk> <s> </s>, bytes, pieces. gemma: <pad> <eos> <bos> <unk>
    <start_of_turn> <end_of_turn>, bytes, pieces, and a user-defined "\\n\\n"."""
    if style == "gemma":
        head = [("<pad>", 0.0, 3), ("<eos>", 0.0, 3), ("<bos>", 0.0, 3), ("<unk>", 0.0, 2),
                ("<start_of_turn>", 0.0, 3), ("<end_of_turn>", 0.0, 3), ("\n\n", 0.0, 4)]
    else:
        head = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3)]
    pieces = head + [(f"<0x{b:02X}>", 0.0, 6) for b in range(256)]
    words = [list("\u2581" + w) for w in CORPUS.split()]
    chars = sorted({c for w in words for c in w})
    merges = _train_merges(words, n_merges)
    merged = []
    for a, b in merges:
        if a + b not in merged and a + b not in chars:
            merged.append(a + b)
    score = 0.0
    for t in merged:  # BPE-type SPM: earlier merges score higher
        pieces.append((t, score, 1))
        score -= 1.0
    for c in chars:
        pieces.append((c, score, 1))
        score -= 1.0
    return pieces


# ---------------------------------------------------------------- checkpoints

ARCH_CONFIGS = {
    "llama3": dict(architectures=["LlamaForCausalLM"], model_type="llama", tokenizer="llama3"),
    "llama2": dict(architectures=["LlamaForCausalLM"], model_type="llama", tokenizer="llama2"),
    "mistral": dict(architectures=["MistralForCausalLM"], model_type="mistral", tokenizer="llama2",
                    sliding_window=4096),
    "qwen2": dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2", tokenizer="qwen2"),
    "qwen3": dict(architectures=["Qwen3ForCausalLM"], model_type="qwen3", tokenizer="qwen2"),
    "gemma3": dict(architectures=["Gemma3ForCausalLM"], model_type="gemma3_text", tokenizer="gemma"),
}


def tokenizer_vocab_size(kind: str) -> int:
    if kind in ("llama3", "qwen2", "gpt2"):
        tj, specials = bpe_tokenizer_json(kind)
        return len(tj["model"]["vocab"]) + len(specials)
    return len(spm_pieces("gemma" if kind == "gemma" else "llama2"))


def write_tokenizer(d: Path, kind: str) -> None:
    if kind in ("llama3", "qwen2", "gpt2"):
        tj, specials = bpe_tokenizer_json(kind)
        (d / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False))
        cfg = {"llama3": dict(bos_token="<|begin_of_text|>", eos_token="<|eot_id|>"),
               "qwen2": dict(bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                             add_bos_token=False,
                             chat_template="{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"),
               "gpt2": dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>")}[kind]
        (d / "tokenizer_config.json").write_text(json.dumps(cfg))
        return
    style = "gemma" if kind == "gemma" else "llama2"
    pieces = spm_pieces(style)
    (d / "tokenizer.model").write_bytes(spm_model_bytes(pieces, add_dummy_prefix=style != "gemma"))
    if style == "gemma":
        cfg = dict(bos_token="<bos>", eos_token="<eos>", unk_token="<unk>", pad_token="<pad>",
                   add_bos_token=True, add_eos_token=False,
                   added_tokens_decoder={str(i): {"content": t, "special": ty in (2, 3)}
                                         for i, (t, _, ty) in enumerate(pieces[:7])})
        (d / "chat_template.jinja").write_text(
            "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m.role }}\n{{ m.content }}<end_of_turn>\n{% endfor %}")
    else:
        cfg = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", add_bos_token=True, add_eos_token=False)
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))


def make_config(arch: str, **over) -> dict:
    spec = dict(ARCH_CONFIGS[arch])
    tok = spec.pop("tokenizer")
    cfg = dict(
        hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, rope_theta=10000.0,
        vocab_size=tokenizer_vocab_size(tok), tie_word_embeddings=False, hidden_act="silu",
        torch_dtype="float32", bos_token_id=None, eos_token_id=None,
    )
    if arch == "qwen3":
        cfg.update(head_dim=32, tie_word_embeddings=True, rope_theta=1000000.0)
    if arch == "gemma3":
        cfg.pop("hidden_act")
        cfg.update(head_dim=32, hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
                   num_hidden_layers=7, sliding_window=4, rope_theta=1000000.0, rope_local_base_freq=10000.0,
                   query_pre_attn_scalar=32, rms_norm_eps=1e-6, final_logit_softcapping=None,
                   attn_logit_softcapping=None,
                   layer_types=["sliding_attention" if i % 6 < 5 else "full_attention" for i in range(7)])
    cfg.update(spec)
    cfg.update(over)
    return cfg


def make_weights(cfg: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights with HF names, scaled so activations stay O(1)."""
    rng = np.random.default_rng(seed)
    E, F, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or E // H
    arch = cfg["architectures"][0]
    gemma = arch.startswith("Gemma")

    def mat(o, i):
        return (rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32)

    def norm(n):
        # Gemma stores w with HF computing (1 + w): keep w near 0 there, near 1 elsewhere.
        base = 0.0 if gemma else 1.0
        return (base + 0.2 * rng.standard_normal(n)).astype(np.float32)

    w = {"model.embed_tokens.weight": (rng.standard_normal((V, E)) * (0.3 if gemma else 1.0)).astype(np.float32)}
    for il in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{il}."
        w[p + "self_attn.q_proj.weight"] = mat(H * hd, E)
        w[p + "self_attn.k_proj.weight"] = mat(KV * hd, E)
        w[p + "self_attn.v_proj.weight"] = mat(KV * hd, E)
        w[p + "self_attn.o_proj.weight"] = mat(E, H * hd)
        w[p + "mlp.gate_proj.weight"] = mat(F, E)
        w[p + "mlp.up_proj.weight"] = mat(F, E)
        w[p + "mlp.down_proj.weight"] = mat(E, F)
        w[p + "input_layernorm.weight"] = norm(E)
        w[p + "post_attention_layernorm.weight"] = norm(E)
        if gemma:
            w[p + "pre_feedforward_layernorm.weight"] = norm(E)
            w[p + "post_feedforward_layernorm.weight"] = norm(E)
        if arch in ("Qwen3ForCausalLM", "Gemma3ForCausalLM"):
            w[p + "self_attn.q_norm.weight"] = norm(hd)
            w[p + "self_attn.k_norm.weight"] = norm(hd)
        if arch == "Qwen2ForCausalLM":
            w[p + "self_attn.q_proj.bias"] = (0.1 * rng.standard_normal(H * hd)).astype(np.float32)
            w[p + "self_attn.k_proj.bias"] = (0.1 * rng.standard_normal(KV * hd)).astype(np.float32)
            w[p + "self_attn.v_proj.bias"] = (0.1 * rng.standard_normal(KV * hd)).astype(np.float32)
    w["model.norm.weight"] = norm(E)
    if not cfg.get("tie_word_embeddings"):
        w["lm_head.weight"] = mat(V, E)
    return w


def write_checkpoint(d: Path, arch: str, dtype: str = "F32", shards: int = 1, seed: int = 0,
                     **config_overrides) -> tuple[dict, dict[str, np.ndarray]]:
    """Write a checkpoint directory; returns (config, weights as the file holds them, f32)."""
    d.mkdir(parents=True, exist_ok=True)
    cfg = make_config(arch, **config_overrides)
    weights = make_weights(cfg, seed)
    if dtype == "BF16":
        weights = {k: bf16_round(v) for k, v in weights.items()}
    elif dtype == "F16":
        weights = {k: v.astype(np.float16).astype(np.float32) for k, v in weights.items()}
    (d / "config.json").write_text(json.dumps(cfg, indent=1))
    names = list(weights)
    if shards == 1:
        write_safetensors(d / "model.safetensors", weights, dtype)
    else:
        weight_map = {}
        for s in range(shards):
            fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            part = {n: weights[n] for n in names[s::shards]}
            write_safetensors(d / fname, part, dtype)
            weight_map.update({n: fname for n in part})
        (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    write_tokenizer(d, ARCH_CONFIGS[arch]["tokenizer"])
    return cfg, weights
