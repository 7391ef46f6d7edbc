#!/usr/bin/env python3
"""Write a GGUF with random weights, for benchmarking shapes no weights can be had for.

    python scripts/make_random_gguf.py --preset llama-3.1-8b --type q4_k_m -o llama8b.gguf
    python scripts/make_random_gguf.py --preset qwen2.5-0.5b --n-layer 2 --type f16 -o tiny.gguf

Everything that makes it a valid model file is pytactic.convert's: a preset is a
transformers config.json (read_hparams validates it and derives what llama.cpp needs),
the tensor list is the architecture's (tensor_specs), the type of each tensor is the
converter's llama.cpp-style mix (choose_types: q4_k_m gives Q6_K to attn_v/ffn_down in
the same layers as llama.cpp), K-quants go through libtactic's own quantizer, and the
file is written by the converter's writer (write_gguf: one tensor at a time, atomic).
Only the weights and the vocabulary are made up:

- the vocabulary is SentencePiece-style (<unk>, <s>, </s>, the 256 byte tokens
  <0x00>..<0xFF>, then fillers "\u2581t<i>"), which both pytactic and llama.cpp load;
- every norm weight is 1 (the GGUF value: for Gemma that is HF's 0, as the converter
  adds 1); llama 3.1's rope_freqs is computed as the converter does;
- every other tensor is drawn by this rule (tests re-derive it): the rows of a tensor
  are taken in chunks of CHUNK_ROWS (a 1-D tensor is one row), and chunk c is
      np.random.default_rng([seed, zlib.crc32(key), c]).standard_normal((rows, cols), float32) * std
  where key is the GGUF tensor name, with "blk.<i>." replaced by "blk.*." under
  --share-layers (every layer then holds the same matrices, so a large file is quick to
  make); std is --scale, times --qk-scale for attn_q/attn_k, and --output-scale for
  output.weight (token_embd.weight when the output is tied to it).

Random weights give flat next-token distributions: the final norm makes the hidden state
about unit RMS, so the logits have a std of output_scale * sqrt(n_embd) and the top-2
margin is typically that / sqrt(2 ln n_vocab) (0.26 for the 8B shape at 0.02). Parity
tests that count steps with a margin above a threshold want a larger --output-scale
(0.1 gives about 1.3 there). --qk-scale > 1 makes attention less uniform.

Speed and memory: rows are drawn and quantized in parallel threads (numpy's generator
and the native quantizer both release the GIL), one tensor at a time, so the memory
needed is about one encoded tensor plus a chunk per thread.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gguf import GGMLQuantizationType as Q  # noqa: E402

from pytactic.convert.converter import ConvertResult, write_gguf  # noqa: E402
from pytactic.convert.hparams import HParams, llama3_rope_factors, read_hparams  # noqa: E402
from pytactic.convert.quantize import OUTTYPES, choose_types, native_quantizer_for, nbytes, quantize  # noqa: E402
from pytactic.convert.tensor_map import T, TensorPlan, tensor_specs  # noqa: E402
from pytactic.convert.vocab import BYTE, CONTROL, NORMAL, UNKNOWN, Vocab  # noqa: E402

CHUNK_ROWS = 256
N_SPECIAL = 3 + 256  # <unk> <s> </s> and the byte tokens

# transformers config.json of each shape (text part; values as the published configs).
PRESETS: dict[str, dict] = {
    "llama-3.1-8b": {
        "architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
        "vocab_size": 128256, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0, "tie_word_embeddings": False,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    },
    "llama-3.2-1b": {
        "architectures": ["LlamaForCausalLM"], "hidden_size": 2048, "num_hidden_layers": 16,
        "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 8192,
        "vocab_size": 128256, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0, "tie_word_embeddings": True,
        "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    },
    "qwen2.5-0.5b": {
        "architectures": ["Qwen2ForCausalLM"], "hidden_size": 896, "num_hidden_layers": 24,
        "num_attention_heads": 14, "num_key_value_heads": 2, "intermediate_size": 4864,
        "vocab_size": 151936, "max_position_embeddings": 32768, "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0, "tie_word_embeddings": True,
    },
    "qwen2.5-7b": {
        "architectures": ["Qwen2ForCausalLM"], "hidden_size": 3584, "num_hidden_layers": 28,
        "num_attention_heads": 28, "num_key_value_heads": 4, "intermediate_size": 18944,
        "vocab_size": 152064, "max_position_embeddings": 32768, "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0, "tie_word_embeddings": False,
    },
    "qwen3-0.6b": {
        "architectures": ["Qwen3ForCausalLM"], "hidden_size": 1024, "num_hidden_layers": 28,
        "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 3072,
        "vocab_size": 151936, "max_position_embeddings": 40960, "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0, "tie_word_embeddings": True,
    },
    "gemma-3-4b": {
        "architectures": ["Gemma3ForCausalLM"], "hidden_size": 2560, "num_hidden_layers": 34,
        "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "intermediate_size": 10240,
        "vocab_size": 262208, "max_position_embeddings": 131072, "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0, "sliding_window": 1024,
        "sliding_window_pattern": 6, "query_pre_attn_scalar": 256, "tie_word_embeddings": True,
        "rope_scaling": {"rope_type": "linear", "factor": 8.0},
    },
    "gemma-3-270m": {
        "architectures": ["Gemma3ForCausalLM"], "hidden_size": 640, "num_hidden_layers": 18,
        "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256, "intermediate_size": 2048,
        "vocab_size": 262144, "max_position_embeddings": 32768, "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0, "sliding_window": 512,
        "sliding_window_pattern": 6, "query_pre_attn_scalar": 256, "tie_word_embeddings": True,
    },
}

# --option -> config.json key
OVERRIDES = {
    "n_layer": "num_hidden_layers", "n_embd": "hidden_size", "n_head": "num_attention_heads",
    "n_head_kv": "num_key_value_heads", "n_ff": "intermediate_size", "vocab": "vocab_size",
    "head_dim": "head_dim", "n_ctx": "max_position_embeddings", "rope_base": "rope_theta",
    "sliding_window": "sliding_window",
}
NORMS = {T.ATTN_NORM, T.FFN_NORM, T.ATTN_POST_NORM, T.FFN_POST_NORM, T.OUTPUT_NORM, T.ATTN_Q_NORM, T.ATTN_K_NORM}


def make_config(preset: str, **overrides) -> dict:
    """The preset's config.json with overrides (None = keep) applied. Overriding the
    width or head count of a preset without an explicit head_dim derives it again."""
    if preset not in PRESETS:
        raise SystemExit(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    cfg = copy.deepcopy(PRESETS[preset])
    tie = overrides.pop("tie", None)
    if tie is not None:
        cfg["tie_word_embeddings"] = bool(tie)
    for opt, value in overrides.items():
        if value is not None:
            cfg[OVERRIDES[opt]] = value
    if cfg.get("vocab_size", 0) < N_SPECIAL + 1:
        raise SystemExit(f"--vocab must be at least {N_SPECIAL + 1} (3 special + 256 byte tokens + fillers)")
    return cfg


def dummy_vocab(n_vocab: int) -> Vocab:
    """A SentencePiece-style vocabulary both pytactic and llama.cpp load."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [UNKNOWN, CONTROL, CONTROL] + [BYTE] * 256
    tokens += [f"\u2581t{i}" for i in range(n_vocab - len(tokens))]
    types += [NORMAL] * (n_vocab - len(types))
    scores = [0.0] * N_SPECIAL + [-float(i) for i in range(n_vocab - N_SPECIAL)]
    return Vocab("llama", tokens, types, scores=scores, add_space_prefix=True,
                 special={"unk": 0, "bos": 1, "eos": 2}, add_bos=True, add_eos=False)


def draw_key(name: str, share_layers: bool) -> str:
    return re.sub(r"^blk\.\d+\.", "blk.*.", name) if share_layers else name


def draw_rows(seed: int, key: str, chunk: int, n_rows: int, n_cols: int, std: float) -> np.ndarray:
    """Chunk `chunk` of the tensor drawn under `key` (the module docstring's rule)."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode()), chunk])
    return rng.standard_normal((n_rows, n_cols), dtype=np.float32) * np.float32(std)


class RandomWeights:
    """Draws and encodes each tensor; under share_layers an encoded layer tensor is
    made once and reused by every layer."""

    def __init__(self, hp: HParams, plans: list[TensorPlan], seed: int, scale: float, qk_scale: float,
                 output_scale: float, share_layers: bool, native, threads: int, verbose: bool):
        self.last_in_layer = {p.layer: p.name for p in plans if p.layer is not None}  # progress lines
        self.hp, self.seed, self.share_layers, self.native = hp, seed, share_layers, native
        self.scale, self.qk_scale, self.output_scale = scale, qk_scale, output_scale
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads))
        self.cache: dict[tuple[str, Q], np.ndarray] = {}
        self.verbose = verbose
        self.t0 = self.t_last = time.perf_counter()
        self.n_written = 0

    def std(self, p: TensorPlan) -> float:
        if p.kind == T.OUTPUT or (p.kind == T.TOKEN_EMBD and self.hp.tie_embeddings):
            return self.output_scale
        if p.kind in (T.ATTN_Q, T.ATTN_K) and p.name.endswith(".weight"):
            return self.scale * self.qk_scale
        return self.scale

    def encode(self, p: TensorPlan, qtype: Q) -> np.ndarray:
        key = draw_key(p.name, self.share_layers)
        data = self.cache.get((key, qtype))
        if data is None:
            data = self._encode(p, qtype, key)
            if self.share_layers and p.layer is not None:
                self.cache[(key, qtype)] = data
        self.n_written += data.nbytes
        if self.verbose and (p.layer is None or self.last_in_layer[p.layer] == p.name):
            where = p.name if p.layer is None else f"layer {p.layer + 1}/{self.hp.n_layer}"
            now = time.perf_counter()
            print(f"  {where:<28} {now - self.t_last:6.2f}s  {self.n_written / 1e9:6.2f} GB written, "
                  f"{now - self.t0:6.1f}s elapsed", flush=True)
            self.t_last = now
        return data

    def _encode(self, p: TensorPlan, qtype: Q, key: str) -> np.ndarray:
        if p.kind in NORMS:
            return quantize(np.ones(p.shape, np.float32), qtype, self.native).view(np.uint8).reshape(-1)
        if p.kind == T.ROPE_FREQS:
            return quantize(llama3_rope_factors(self.hp), qtype, self.native).view(np.uint8).reshape(-1)
        n_cols = p.shape[-1]
        n_rows = int(np.prod(p.shape[:-1]))
        row_bytes = nbytes(qtype, (n_cols,))
        out = np.empty(n_rows * row_bytes, np.uint8)
        std = self.std(p)

        def chunk(c: int) -> None:
            r0 = c * CHUNK_ROWS
            rows = min(CHUNK_ROWS, n_rows - r0)
            enc = quantize(draw_rows(self.seed, key, c, rows, n_cols, std), qtype, self.native)
            out[r0 * row_bytes:(r0 + rows) * row_bytes] = np.ascontiguousarray(enc).view(np.uint8).reshape(-1)

        # list() re-raises a worker's exception here, in the main thread
        list(self.pool.map(chunk, range((n_rows + CHUNK_ROWS - 1) // CHUNK_ROWS)))
        return out


def random_plans(hp: HParams) -> list[TensorPlan]:
    """The architecture's tensors; data comes from RandomWeights.encode, not load()."""
    def no_load():
        raise RuntimeError("random tensors are drawn by RandomWeights.encode")

    return [TensorPlan(s.name, tuple(s.shape), s.kind, s.layer, no_load, "(random)")
            for s in tensor_specs(hp, with_output=not hp.tie_embeddings)]


def make_random_gguf(out: str | os.PathLike, preset: str = "llama-3.2-1b", outtype: str = "f16", *,
                     seed: int = 0, scale: float = 0.02, qk_scale: float = 1.0,
                     output_scale: float | None = None, share_layers: bool = False,
                     threads: int | None = None, verbose: bool = False, **overrides) -> ConvertResult:
    """Write the random-weight GGUF; overrides as make_config (n_layer=..., tie=...)."""
    outtype = outtype.lower()
    if outtype not in OUTTYPES:
        raise SystemExit(f"unknown type {outtype!r}; choose one of {', '.join(OUTTYPES)}")
    cfg = make_config(preset, **overrides)
    hp = read_hparams(cfg, f"random-{preset}")
    plans = random_plans(hp)
    types = choose_types(plans, outtype, hp.n_layer)
    native = native_quantizer_for(types)
    weights = RandomWeights(hp, plans, seed, scale, qk_scale, scale if output_scale is None else output_scale,
                            share_layers, native, threads or os.cpu_count() or 1, verbose)
    if verbose:
        n_params = sum(int(np.prod(p.shape)) for p in plans)
        print(f"{hp.arch} {preset}: {hp.n_layer} layers, n_embd {hp.n_embd}, heads {hp.n_head}/{hp.n_head_kv} "
              f"x {hp.head_dim}, n_ff {hp.n_ff}, vocab {hp.n_vocab}, {n_params / 1e9:.3f}B parameters, "
              f"{outtype}, seed {seed}{', shared layers' if share_layers else ''} -> {out}", flush=True)
    try:
        n_bytes = write_gguf(Path(out), hp, dummy_vocab(hp.n_vocab), plans, types, outtype,
                             weights.encode)
    finally:
        weights.pool.shutdown()
    if verbose:
        print(f"wrote {out}: {os.path.getsize(out) / 1e9:.2f} GB in {time.perf_counter() - weights.t0:.1f}s",
              flush=True)
    return ConvertResult(Path(out), hp.arch, outtype, len(plans), {k: v.name for k, v in types.items()}, n_bytes)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", required=True, help="output .gguf")
    ap.add_argument("--preset", default="llama-3.2-1b", choices=sorted(PRESETS))
    ap.add_argument("--type", default="f16", choices=list(OUTTYPES), help="tensor type or mix (default f16)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=0.02, help="std of the weights (default 0.02)")
    ap.add_argument("--qk-scale", type=float, default=1.0,
                    help="multiplies the std of attn_q/attn_k: > 1 gives peaked attention")
    ap.add_argument("--output-scale", type=float, default=None,
                    help="std of output.weight (token_embd when tied); larger gives larger top-2 logit margins "
                         "(default: --scale)")
    ap.add_argument("--share-layers", action="store_true", help="every layer holds the same random matrices")
    ap.add_argument("--threads", type=int, default=None, help="default: all cores")
    for opt in OVERRIDES:
        kind = float if opt == "rope_base" else int
        ap.add_argument("--" + opt.replace("_", "-"), type=kind, default=None, dest=opt,
                        help=f"override config.json {OVERRIDES[opt]}")
    tie = ap.add_mutually_exclusive_group()
    tie.add_argument("--tie", dest="tie", action="store_true", default=None, help="output tied to token_embd")
    tie.add_argument("--no-tie", dest="tie", action="store_false", help="a separate output.weight")
    a = ap.parse_args(argv)
    overrides = {opt: getattr(a, opt) for opt in OVERRIDES}
    make_random_gguf(a.out, a.preset, a.type, seed=a.seed, scale=a.scale, qk_scale=a.qk_scale,
                     output_scale=a.output_scale, share_layers=a.share_layers, threads=a.threads,
                     verbose=True, tie=a.tie, **overrides)
    return 0


if __name__ == "__main__":
    sys.exit(main())
