"""Hyper-parameters: config.json (transformers 4.x or 5.x layout) -> one validated
HParams, and HParams -> the GGUF keys llama.cpp reads for the architecture."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import gguf
import numpy as np

from .errors import CheckpointFormatError, UnsupportedModelError

log = logging.getLogger("pytactic.convert")

# HF class -> GGUF architecture.
SUPPORTED_ARCHITECTURES = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "Gemma3ForCausalLM": "gemma3",
}
_ACTIVATION = {"llama": "silu", "qwen2": "silu", "qwen3": "silu", "gemma3": "gelu_pytorch_tanh"}
# Gemma 3 (text): every 6th layer is global unless the config says otherwise.
GEMMA3_DEFAULT_SWA_PERIOD = 6


@dataclass
class RopeScaling:
    kind: str  # "linear", "yarn" or "llama3"
    factor: float
    original_context: int = 0
    low_freq_factor: float = 1.0   # llama3
    high_freq_factor: float = 4.0  # llama3
    attn_factor: float | None = None  # yarn: an explicit attention_factor


@dataclass
class HParams:
    hf_class: str
    arch: str
    n_vocab: int
    n_embd: int
    n_layer: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ctx: int
    rms_eps: float
    rope_base: float
    tie_embeddings: bool
    rope_scaling: RopeScaling | None = None
    rope_base_swa: float | None = None  # gemma3 local layers
    sliding_window: int = 0             # gemma3
    swa_period: int = 0                 # gemma3: layer il is local iff il % period < period - 1
    attn_scale: float | None = None     # q scale when it is not 1/sqrt(head_dim)
    final_logit_softcap: float | None = None
    qkv_bias: bool = False
    name: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def head_dim_is_default(self) -> bool:
        return self.head_dim * self.n_head == self.n_embd


def _get(cfg: dict, key: str, kind=int, default=None, required=True):
    v = cfg.get(key, default)
    if v is None:
        if required:
            raise CheckpointFormatError(f"config.json: '{key}' is missing")
        return None
    try:
        return kind(v)
    except (TypeError, ValueError) as e:
        raise CheckpointFormatError(f"config.json: '{key}' = {v!r} is not a {kind.__name__}") from e


def architecture_of(cfg: dict) -> tuple[str, str]:
    archs = cfg.get("architectures") or []
    if isinstance(archs, str):
        archs = [archs]
    for a in archs:
        if a in SUPPORTED_ARCHITECTURES:
            return a, SUPPORTED_ARCHITECTURES[a]
    got = ", ".join(map(str, archs)) or f"none (model_type {cfg.get('model_type')!r})"
    raise UnsupportedModelError(
        f"config.json: unsupported architecture {got}; supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
    )


def _rope_params(cfg: dict, arch: str) -> tuple[dict, dict | None]:
    """(global-layer rope dict, local-layer rope dict or None) in one shape for both
    transformers layouts: 4.x rope_theta + rope_scaling, 5.x rope_parameters."""
    rp = cfg.get("rope_parameters")
    if isinstance(rp, dict) and ("full_attention" in rp or "sliding_attention" in rp):
        return dict(rp.get("full_attention") or {}), dict(rp.get("sliding_attention") or {})
    if isinstance(rp, dict):
        return dict(rp), None
    glob = dict(cfg.get("rope_scaling") or {})
    if cfg.get("rope_theta") is not None:
        glob["rope_theta"] = cfg["rope_theta"]
    local = None
    if arch == "gemma3":
        local = {"rope_theta": cfg.get("rope_local_base_freq", 10000.0)}
    return glob, local


def _rope_scaling(rope: dict, arch: str, n_ctx: int) -> RopeScaling | None:
    kind = rope.get("rope_type", rope.get("type"))
    if kind in (None, "default"):
        return None
    factor = float(rope.get("factor", 1.0))
    if kind == "linear":
        return RopeScaling("linear", factor) if factor != 1.0 else None
    if kind == "llama3":
        if arch != "llama":
            raise UnsupportedModelError(f"rope_type llama3 is only supported for llama, not {arch}")
        return RopeScaling(
            "llama3",
            factor,
            int(rope.get("original_max_position_embeddings", 8192)),
            float(rope.get("low_freq_factor", 1.0)),
            float(rope.get("high_freq_factor", 4.0)),
        )
    if kind == "yarn":
        if float(rope.get("beta_fast", 32)) != 32 or float(rope.get("beta_slow", 1)) != 1:
            raise UnsupportedModelError("YaRN with beta_fast != 32 or beta_slow != 1 is not supported")
        if rope.get("mscale") not in (None, 1, 1.0) or rope.get("mscale_all_dim") not in (None, 0, 0.0):
            raise UnsupportedModelError("YaRN with mscale/mscale_all_dim is not supported")
        orig = int(rope.get("original_max_position_embeddings") or n_ctx)
        af = rope.get("attention_factor")
        return RopeScaling("yarn", factor, orig, attn_factor=None if af is None else float(af))
    raise UnsupportedModelError(f"RoPE scaling type {kind!r} is not supported (linear, llama3, yarn are)")


def _swa_period(cfg: dict, n_layer: int) -> int:
    """The period P such that layer il is local iff il % P < P - 1, from layer_types
    (transformers >= 4.53) or sliding_window_pattern."""
    types = cfg.get("layer_types")
    if types:
        if len(types) != n_layer:
            raise CheckpointFormatError(f"config.json: layer_types has {len(types)} entries for {n_layer} layers")
        local = [t == "sliding_attention" for t in types]
        for period in [GEMMA3_DEFAULT_SWA_PERIOD, *range(1, n_layer + 2)]:
            if all(local[il] == (il % period < period - 1) for il in range(n_layer)):
                return period
        raise UnsupportedModelError("config.json: layer_types is not a periodic local/global pattern")
    p = cfg.get("sliding_window_pattern", cfg.get("_sliding_window_pattern"))
    return int(p) if p else GEMMA3_DEFAULT_SWA_PERIOD


def read_hparams(cfg: dict, name: str = "") -> HParams:
    hf_class, arch = architecture_of(cfg)
    n_embd = _get(cfg, "hidden_size")
    n_head = _get(cfg, "num_attention_heads")
    n_head_kv = _get(cfg, "num_key_value_heads", default=n_head)
    head_default = 256 if arch == "gemma3" else n_embd // max(n_head, 1)
    head_dim = _get(cfg, "head_dim", default=head_default)
    n_layer = _get(cfg, "num_hidden_layers")
    n_ctx = _get(cfg, "max_position_embeddings", default=2048)
    for k, v in (("hidden_size", n_embd), ("num_attention_heads", n_head), ("num_key_value_heads", n_head_kv),
                 ("head_dim", head_dim), ("num_hidden_layers", n_layer)):
        if v <= 0:
            raise CheckpointFormatError(f"config.json: '{k}' = {v} must be positive")
    if n_head % n_head_kv:
        raise CheckpointFormatError("config.json: num_attention_heads is not a multiple of num_key_value_heads")

    act = cfg.get("hidden_activation") or cfg.get("hidden_act")
    if act is not None and act != _ACTIVATION[arch] and not (arch == "gemma3" and act == "gelu_tanh"):
        raise UnsupportedModelError(f"config.json: activation {act!r} is not supported for {arch}")

    glob, local = _rope_params(cfg, arch)
    default_base = 1_000_000.0 if arch == "gemma3" else 10_000.0
    hp = HParams(
        hf_class=hf_class,
        arch=arch,
        n_vocab=_get(cfg, "vocab_size"),
        n_embd=n_embd,
        n_layer=n_layer,
        n_ff=_get(cfg, "intermediate_size"),
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim=head_dim,
        n_ctx=n_ctx,
        rms_eps=_get(cfg, "rms_norm_eps", float, default=1e-6 if arch == "gemma3" else 1e-5),
        rope_base=float(glob.get("rope_theta", default_base)),
        tie_embeddings=bool(cfg.get("tie_word_embeddings", arch == "gemma3")),
        name=name,
    )
    hp.rope_scaling = _rope_scaling(glob, arch, n_ctx)

    if arch == "llama" and (cfg.get("attention_bias") or cfg.get("mlp_bias")):
        raise UnsupportedModelError("llama with attention_bias/mlp_bias is not supported")
    if arch == "qwen2":
        hp.qkv_bias = True
    if arch == "qwen3" and cfg.get("attention_bias"):
        raise UnsupportedModelError("qwen3 with attention_bias is not supported")
    if arch in ("qwen2", "qwen3") and cfg.get("use_sliding_window"):
        raise UnsupportedModelError(f"{arch} with use_sliding_window is not supported")
    if arch == "llama" and (cfg.get("sliding_window") or 0) and cfg["sliding_window"] < n_ctx:
        # As in llama.cpp: Mistral's window is not applied; outputs differ past it.
        log.warning("sliding_window %s is ignored (as llama.cpp does); contexts beyond it differ from HF",
                    cfg["sliding_window"])
    if arch == "gemma3":
        if cfg.get("attn_logit_softcapping") is not None:
            raise UnsupportedModelError("gemma3 with attn_logit_softcapping is not supported")
        if cfg.get("use_bidirectional_attention"):
            raise UnsupportedModelError("gemma3 with bidirectional attention is not supported")
        hp.final_logit_softcap = cfg.get("final_logit_softcapping")
        hp.rope_base_swa = float((local or {}).get("rope_theta", 10000.0))
        if local and _rope_scaling(local, arch, n_ctx) is not None:
            raise UnsupportedModelError("gemma3 with RoPE scaling on local layers is not supported")
        hp.sliding_window = int(cfg.get("sliding_window") or 0)
        if hp.sliding_window:
            hp.swa_period = _swa_period(cfg, n_layer)
        scalar = float(cfg.get("query_pre_attn_scalar", head_dim))
        # llama.cpp derives the scale (1/sqrt(head_dim), or n_embd/n_head for the
        # 62-layer 27B); write it only when the config says something else.
        derived = n_embd / n_head if n_layer == 62 else head_dim
        if scalar != derived:
            hp.attn_scale = scalar ** -0.5
    return hp


def llama3_rope_factors(hp: HParams) -> np.ndarray:
    """The divisors of each RoPE frequency that Llama 3.1 scaling applies (rope_freqs.weight)."""
    rs = hp.rope_scaling
    freqs = 1.0 / (hp.rope_base ** (np.arange(0, hp.head_dim, 2, dtype=np.float64) / hp.head_dim))
    low_wavelen = rs.original_context / rs.low_freq_factor
    high_wavelen = rs.original_context / rs.high_freq_factor
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(rs.factor)
        else:
            s = (rs.original_context / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor)
            out.append(1.0 / ((1 - s) / rs.factor + s))
    return np.asarray(out, dtype=np.float32)


def write_hparams(w: gguf.GGUFWriter, hp: HParams) -> None:
    w.add_context_length(hp.n_ctx)
    w.add_embedding_length(hp.n_embd)
    w.add_block_count(hp.n_layer)
    w.add_feed_forward_length(hp.n_ff)
    w.add_head_count(hp.n_head)
    w.add_head_count_kv(hp.n_head_kv)
    w.add_layer_norm_rms_eps(hp.rms_eps)
    w.add_rope_freq_base(hp.rope_base)
    w.add_vocab_size(hp.n_vocab)
    if hp.arch in ("qwen3", "gemma3") or not hp.head_dim_is_default:
        w.add_key_length(hp.head_dim)
        w.add_value_length(hp.head_dim)
    if hp.arch == "llama":
        w.add_rope_dimension_count(hp.head_dim)
    rs = hp.rope_scaling
    if rs is not None and rs.kind == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(rs.factor)
    elif rs is not None and rs.kind == "yarn":
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(rs.factor)
        w.add_rope_scaling_orig_ctx_len(rs.original_context)
        if rs.attn_factor is not None:
            # llama.cpp multiplies attn_factor by its own 1 + 0.1 ln(factor); HF's explicit
            # attention_factor replaces that term, so divide it back out.
            w.add_rope_scaling_attn_factors(rs.attn_factor / (1 + 0.1 * math.log(rs.factor)))
    # llama3: no scaling keys; the rope_freqs.weight tensor carries it.
    if hp.arch == "gemma3":
        if hp.sliding_window:
            w.add_sliding_window(hp.sliding_window)
            if hp.swa_period != GEMMA3_DEFAULT_SWA_PERIOD:
                w.add_sliding_window_pattern(hp.swa_period)
        if hp.rope_base_swa is not None and hp.rope_base_swa != 10000.0:
            w.add_rope_freq_base_swa(hp.rope_base_swa)
        if hp.attn_scale is not None:
            w.add_attention_scale(hp.attn_scale)
        if hp.final_logit_softcap:
            w.add_final_logit_softcapping(float(hp.final_logit_softcap))
