"""An independent numpy implementation of the Hugging Face forward passes of
LlamaForCausalLM / MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM and
Gemma3ForCausalLM (text), from HF-named weights and config.json, in float64.

It follows transformers' modeling code (rotate_half RoPE, (1 + w) Gemma norms,
sliding windows, GQA) and knows nothing of GGUF, so it is an oracle for the
converter and the runtime together."""

from __future__ import annotations

import math

import numpy as np


def _rope_config(cfg: dict, layer_type: str) -> tuple[float, dict]:
    """(theta, scaling dict) for a layer, for transformers 4.x and 5.x configs."""
    rp = cfg.get("rope_parameters")
    if isinstance(rp, dict) and ("full_attention" in rp or "sliding_attention" in rp):
        d = rp.get(layer_type) or rp.get("full_attention")
        return float(d["rope_theta"]), d
    if isinstance(rp, dict):
        return float(rp.get("rope_theta", 10000.0)), rp
    if cfg.get("model_type", "").startswith("gemma3") and layer_type == "sliding_attention":
        return float(cfg.get("rope_local_base_freq", 10000.0)), {}
    return float(cfg.get("rope_theta", 10000.0)), dict(cfg.get("rope_scaling") or {})


def inv_freq_and_scale(cfg: dict, head_dim: int, layer_type: str = "full_attention") -> tuple[np.ndarray, float]:
    """HF's inverse frequencies and attention (cos/sin) scaling for a RoPE config."""
    theta, sc = _rope_config(cfg, layer_type)
    kind = sc.get("rope_type", sc.get("type", "default")) or "default"
    inv = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    if kind == "default":
        return inv, 1.0
    factor = float(sc["factor"])
    if kind == "linear":
        return inv / factor, 1.0
    if kind == "llama3":
        low, high = float(sc.get("low_freq_factor", 1.0)), float(sc.get("high_freq_factor", 4.0))
        old = float(sc.get("original_max_position_embeddings", 8192))
        wavelen = 2 * math.pi / inv
        out = np.where(wavelen > old / low, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * out / factor + smooth * out
        medium = ~(wavelen < old / high) & ~(wavelen > old / low)
        return np.where(medium, smoothed, out), 1.0
    if kind == "yarn":
        orig = float(sc.get("original_max_position_embeddings") or cfg["max_position_embeddings"])
        beta_fast, beta_slow = float(sc.get("beta_fast", 32)), float(sc.get("beta_slow", 1))
        attn = sc.get("attention_factor")
        attn = 0.1 * math.log(factor) + 1.0 if attn is None else float(attn)

        def corr_dim(n_rot):
            return head_dim * math.log(orig / (n_rot * 2 * math.pi)) / (2 * math.log(theta))

        lo = max(math.floor(corr_dim(beta_fast)), 0)
        hi = min(math.ceil(corr_dim(beta_slow)), head_dim - 1)
        if lo == hi:
            hi += 0.001
        ramp = np.clip((np.arange(head_dim // 2, dtype=np.float64) - lo) / (hi - lo), 0, 1)
        extrapolation = 1 - ramp
        inv = (inv / factor) * (1 - extrapolation) + inv * extrapolation
        return inv, attn
    raise ValueError(f"rope type {kind} not implemented in the reference")


def rms_norm(x: np.ndarray, w: np.ndarray, eps: float, gemma: bool) -> np.ndarray:
    y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return y * (1.0 + w) if gemma else y * w


def rotate_half(x: np.ndarray) -> np.ndarray:
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def forward(cfg: dict, weights: dict[str, np.ndarray], tokens: list[int]) -> np.ndarray:
    """Logits [n_tokens, vocab] of the HF model for `tokens` (positions 0..n-1)."""
    W = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    arch = cfg["architectures"][0]
    gemma = arch == "Gemma3ForCausalLM"
    E, H = cfg["hidden_size"], cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads") or H
    hd = cfg.get("head_dim") or (256 if gemma else E // H)
    eps = cfg.get("rms_norm_eps", 1e-6)
    n = len(tokens)
    pos = np.arange(n, dtype=np.float64)

    x = W["model.embed_tokens.weight"][tokens]
    if gemma:
        x = x * np.float64(np.float32(E ** 0.5))
    scale = cfg.get("query_pre_attn_scalar", hd) ** -0.5 if gemma else hd ** -0.5
    layer_types = cfg.get("layer_types")
    window = cfg.get("sliding_window") if gemma else None
    act = gelu_tanh if gemma else silu

    for il in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{il}."
        ltype = layer_types[il] if layer_types else "full_attention"
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps, gemma)
        q = h @ W[p + "self_attn.q_proj.weight"].T
        k = h @ W[p + "self_attn.k_proj.weight"].T
        v = h @ W[p + "self_attn.v_proj.weight"].T
        if p + "self_attn.q_proj.bias" in W:
            q = q + W[p + "self_attn.q_proj.bias"]
            k = k + W[p + "self_attn.k_proj.bias"]
            v = v + W[p + "self_attn.v_proj.bias"]
        q = q.reshape(n, H, hd)
        k = k.reshape(n, KV, hd)
        v = v.reshape(n, KV, hd)
        if p + "self_attn.q_norm.weight" in W:
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], eps, gemma)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], eps, gemma)
        inv, mscale = inv_freq_and_scale(cfg, hd, ltype)
        ang = np.outer(pos, inv)
        emb = np.concatenate([ang, ang], axis=-1)
        cos, sin = (np.cos(emb) * mscale)[:, None, :], (np.sin(emb) * mscale)[:, None, :]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin

        mask = np.tril(np.ones((n, n), dtype=bool))
        if window and ltype == "sliding_attention":
            diff = np.arange(n)[:, None] - np.arange(n)[None, :]
            mask &= diff < window
        out = np.empty((n, H, hd))
        group = H // KV
        for hh in range(H):
            kh = hh // group
            s = (q[:, hh, :] @ k[:, kh, :].T) * scale
            s = np.where(mask, s, -np.inf)
            s = s - s.max(axis=-1, keepdims=True)
            pr = np.exp(s)
            pr /= pr.sum(axis=-1, keepdims=True)
            out[:, hh, :] = pr @ v[:, kh, :]
        o = out.reshape(n, H * hd) @ W[p + "self_attn.o_proj.weight"].T
        if gemma:
            x = x + rms_norm(o, W[p + "post_attention_layernorm.weight"], eps, True)
            h = rms_norm(x, W[p + "pre_feedforward_layernorm.weight"], eps, True)
        else:
            x = x + o
            h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps, False)
        f = (act(h @ W[p + "mlp.gate_proj.weight"].T) * (h @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
        if gemma:
            f = rms_norm(f, W[p + "post_feedforward_layernorm.weight"], eps, True)
        x = x + f

    x = rms_norm(x, W["model.norm.weight"], eps, gemma)
    head = W.get("lm_head.weight")
    if head is None or cfg.get("tie_word_embeddings", gemma):
        head = W["model.embed_tokens.weight"]
    logits = x @ head.T
    cap = cfg.get("final_logit_softcapping")
    if cap:
        logits = np.tanh(logits / cap) * cap
    return logits
