"""Per-architecture tensor maps and fixes: which HF tensor becomes which GGUF tensor,
the shape config.json implies for it, and the transformation on the way:

- llama: Q and K rows are permuted inside each head so that llama.cpp's NORM RoPE
  (adjacent pairs) equals HF's rotate_half (pairs i, i + head_dim/2);
- gemma3: every RMSNorm weight gets +1 (HF computes x * (1 + w); llama.cpp x * w);
- llama 3.1: a computed rope_freqs tensor carries the llama3 RoPE scaling;
- tied embeddings: no output.weight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import gguf
import numpy as np

from .errors import ShapeMismatchError, UnsupportedModelError
from .hparams import HParams, llama3_rope_factors
from .safetensors_io import TensorRef

T = gguf.MODEL_TENSOR
_IGNORED = re.compile(r"(^|\.)rotary_emb\.inv_freq$")


@dataclass
class TensorPlan:
    name: str                       # GGUF tensor name
    shape: tuple[int, ...]          # numpy (row-major) shape: a weight is [out, in]
    kind: T                         # what it is, for the quantization mix
    layer: int | None
    load: Callable[[], np.ndarray]  # float32 array of `shape`, transformations applied
    source: str                     # the HF tensor it comes from, for messages


def gguf_name(kind: T, layer: int | None = None, suffix: str = "weight") -> str:
    base = gguf.TENSOR_NAMES[kind]
    return (base.format(bid=layer) if layer is not None else base) + "." + suffix


def permute_for_norm_rope(w: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder the rows of each head from HF's halves layout (i, i + hd/2) to
    llama.cpp's interleaved pairs (2i, 2i + 1)."""
    rows = w.shape[0]
    return (w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:])
             .swapaxes(1, 2)
             .reshape(w.shape))


def _layer_specs(hp: HParams) -> list[tuple[str, T, tuple[int, ...], str]]:
    """(HF suffix under model.layers.N., GGUF kind, expected shape, fix) for one layer."""
    E, F, hd = hp.n_embd, hp.n_ff, hp.head_dim
    q, kv = hp.n_head * hd, hp.n_head_kv * hd
    specs = [
        ("self_attn.q_proj.weight", T.ATTN_Q, (q, E), "permute_q" if hp.arch == "llama" else ""),
        ("self_attn.k_proj.weight", T.ATTN_K, (kv, E), "permute_k" if hp.arch == "llama" else ""),
        ("self_attn.v_proj.weight", T.ATTN_V, (kv, E), ""),
        ("self_attn.o_proj.weight", T.ATTN_OUT, (E, q), ""),
        ("mlp.gate_proj.weight", T.FFN_GATE, (F, E), ""),
        ("mlp.up_proj.weight", T.FFN_UP, (F, E), ""),
        ("mlp.down_proj.weight", T.FFN_DOWN, (E, F), ""),
        ("input_layernorm.weight", T.ATTN_NORM, (E,), "norm"),
    ]
    if hp.arch == "gemma3":
        specs += [
            ("post_attention_layernorm.weight", T.ATTN_POST_NORM, (E,), "norm"),
            ("pre_feedforward_layernorm.weight", T.FFN_NORM, (E,), "norm"),
            ("post_feedforward_layernorm.weight", T.FFN_POST_NORM, (E,), "norm"),
        ]
    else:
        specs.append(("post_attention_layernorm.weight", T.FFN_NORM, (E,), "norm"))
    if hp.arch in ("qwen3", "gemma3"):
        specs += [
            ("self_attn.q_norm.weight", T.ATTN_Q_NORM, (hd,), "norm"),
            ("self_attn.k_norm.weight", T.ATTN_K_NORM, (hd,), "norm"),
        ]
    if hp.qkv_bias:
        specs += [
            ("self_attn.q_proj.bias", T.ATTN_Q, (q,), ""),
            ("self_attn.k_proj.bias", T.ATTN_K, (kv,), ""),
            ("self_attn.v_proj.bias", T.ATTN_V, (kv,), ""),
        ]
    return specs


def _loader(ref: TensorRef, fix: str, hp: HParams) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        w = ref.load()
        if fix == "permute_q":
            w = permute_for_norm_rope(w, hp.n_head)
        elif fix == "permute_k":
            w = permute_for_norm_rope(w, hp.n_head_kv)
        elif fix == "norm" and hp.arch == "gemma3":
            w = w + np.float32(1.0)
        return np.ascontiguousarray(w, dtype=np.float32)

    return load


@dataclass
class TensorSpec:
    """One tensor an architecture's GGUF holds, before any data is attached."""

    name: str                       # GGUF tensor name
    shape: tuple[int, ...]          # numpy (row-major) shape: a weight is [out, in]
    kind: T
    layer: int | None
    source: str                     # the HF tensor it comes from ("" when computed)
    fix: str                        # the transformation on the way (see _loader)


def tensor_specs(hp: HParams, with_output: bool) -> list[TensorSpec]:
    """The GGUF tensors of `hp`'s architecture, in file order. with_output: the file
    has its own output.weight (an untied lm_head); otherwise llama.cpp reuses
    token_embd. A llama 3.1 rope_freqs tensor has no source: it is computed from hp."""
    specs = [TensorSpec(gguf_name(T.TOKEN_EMBD), (hp.n_vocab, hp.n_embd), T.TOKEN_EMBD, None,
                        "model.embed_tokens.weight", "")]
    if hp.rope_scaling is not None and hp.rope_scaling.kind == "llama3":
        specs.append(TensorSpec(gguf_name(T.ROPE_FREQS), (hp.head_dim // 2,), T.ROPE_FREQS, None, "", "rope_freqs"))
    for il in range(hp.n_layer):
        for hf, kind, shape, fix in _layer_specs(hp):
            suffix = "bias" if hf.endswith(".bias") else "weight"
            specs.append(TensorSpec(gguf_name(kind, il, suffix), shape, kind, il, f"model.layers.{il}.{hf}", fix))
    specs.append(TensorSpec(gguf_name(T.OUTPUT_NORM), (hp.n_embd,), T.OUTPUT_NORM, None, "model.norm.weight", "norm"))
    if with_output:
        specs.append(TensorSpec(gguf_name(T.OUTPUT), (hp.n_vocab, hp.n_embd), T.OUTPUT, None, "lm_head.weight", ""))
    return specs


def plan_tensors(hp: HParams, refs: dict[str, TensorRef]) -> list[TensorPlan]:
    """The GGUF tensors, in file order, each checked against config.json."""
    remaining = dict(refs)
    plans: list[TensorPlan] = []

    emb = refs.get("model.embed_tokens.weight")
    if emb is not None and len(emb.shape) == 2 and emb.shape[0] != hp.n_vocab:
        raise ShapeMismatchError(
            f"tensor 'model.embed_tokens.weight' has {emb.shape[0]} rows but config.json vocab_size is {hp.n_vocab}"
        )
    for spec in tensor_specs(hp, with_output="lm_head.weight" in refs and not hp.tie_embeddings):
        if spec.kind == T.ROPE_FREQS:
            factors = llama3_rope_factors(hp)
            plans.append(TensorPlan(spec.name, factors.shape, T.ROPE_FREQS, None,
                                    lambda f=factors: f, "(rope_scaling llama3)"))
            continue
        ref = remaining.pop(spec.source, None)
        if ref is None:
            raise ShapeMismatchError(
                f"tensor '{spec.source}' is missing from the checkpoint ({hp.hf_class} needs it)")
        if tuple(ref.shape) != tuple(spec.shape):
            raise ShapeMismatchError(
                f"tensor '{spec.source}' in {ref.path.name} has shape {list(ref.shape)}, "
                f"but config.json implies {list(spec.shape)}"
            )
        plans.append(TensorPlan(spec.name, tuple(spec.shape), spec.kind, spec.layer,
                                _loader(ref, spec.fix, hp), spec.source))
    remaining.pop("lm_head.weight", None)  # tied: llama.cpp reuses token_embd

    unknown = [n for n in remaining if not _IGNORED.search(n)]
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise UnsupportedModelError(
            f"tensor '{unknown[0]}'{more} has no place in a {hp.arch} GGUF; is config.json's architecture right?"
        )
    return plans
