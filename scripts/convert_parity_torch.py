"""Parity of `python -m pytactic.convert` with transformers, end to end.

For each supported architecture: build a small random model with transformers' own
classes, save_pretrained it (safetensors) with a byte-level BPE tokenizer trained by
the `tokenizers` library, convert it with pytactic.convert, run it in pytactic, and
compare against transformers (torch, float32, eager attention):
  - logits over a prompt: max |diff| / max |logit| (target < 1e-3 for f32 output);
  - greedy tokens: the 16 tokens transformers generates vs pytactic's;
  - tokenization: the HF tokenizer vs pytactic's on tests/data/tokenize.json texts.
Also q8_0 output (looser). Prints a table; writes JSON to $OUT/convert_parity_torch.json
when OUT is set (and to --json PATH if given).

Needs: torch, transformers, tokenizers, and a built libtactic (TACTIC_LIB or pytactic's
usual search). Run from the repository root:  python scripts/convert_parity_torch.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = LLAMA3_REGEX.replace(r"\p{N}{1,3}", r"\p{N}")
CORPUS = [
    "The quick brown fox jumps over the lazy dog. Hello world! How are you today?",
    "Numbers like 12345 and 2026 appear in text; so do symbols: #, $, %, & and emoji 🙂.",
    "Large language models predict the next token. Tokenizers split text into pieces.",
    "Il était une fois une petite fille. Über den Wolken. Café, naïve, façade.",
]

# name -> (transformers config class name, model class name, config overrides, tokenizer regex)
ARCHS = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}, LLAMA3_REGEX),
    "llama3.1-rope": ("LlamaConfig", "LlamaForCausalLM", dict(rope_theta=500000.0, max_position_embeddings=4096, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 256}), LLAMA3_REGEX),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(sliding_window=None), LLAMA3_REGEX),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(tie_word_embeddings=True), QWEN2_REGEX),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(head_dim=32), QWEN2_REGEX),
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", dict(head_dim=32, sliding_window=8, num_hidden_layers=7,
                                                            query_pre_attn_scalar=32), LLAMA3_REGEX),
}


def make_tokenizer(regex: str, directory: Path):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=specials[0], eos_token=specials[1])
    fast.save_pretrained(directory)
    return fast


def make_model(name: str, directory: Path, vocab_size: int, seed: int):
    import torch
    import transformers

    cfg_cls, model_cls, over, _ = ARCHS[name]
    kw = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
              bos_token_id=0, eos_token_id=1, pad_token_id=None)
    kw.update(over)
    cfg = getattr(transformers, cfg_cls)(**kw)
    cfg.architectures = [model_cls]
    torch.manual_seed(seed)
    model = getattr(transformers, model_cls)(cfg).float().eval()
    # transformers' init (std 0.02) gives near-flat logits; use O(1) activations so
    # greedy tokens are well separated.
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.ndim == 2:
                p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
            elif "norm" in pname:
                base = 0.0 if name == "gemma3" else 1.0
                p.copy_(base + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))
    model.save_pretrained(directory, safe_serialization=True)
    return model


class Runtime:
    """pytactic through its C ABI (works before or without the Python Model class)."""

    def __init__(self, path: Path, n_ctx: int = 256):
        from pytactic import _native as n

        self.n, self.ffi, self.lib = n, n.ffi, n.lib
        m = self.ffi.new("tactic_model **")
        n.check(self.lib.tactic_model_load(str(path).encode(), self.ffi.new(
            "tactic_model_params *", self.lib.tactic_model_default_params()), m))
        self.model = m[0]
        info = self.ffi.new("tactic_model_info *")
        n.check(self.lib.tactic_model_get_info(self.model, info))
        self.n_vocab = info.n_vocab
        cp = self.lib.tactic_context_default_params()
        cp.n_ctx, cp.attention = n_ctx, self.lib.TACTIC_ATTN_FULL
        c = self.ffi.new("tactic_context **")
        n.check(self.lib.tactic_context_new(self.model, self.ffi.new("tactic_context_params *", cp), c))
        self.ctx = c[0]

    def close(self):
        self.lib.tactic_context_free(self.ctx)
        self.lib.tactic_model_free(self.model)

    def eval(self, tokens: list[int], all_logits: bool) -> np.ndarray:
        self.n.check(self.lib.tactic_eval(self.ctx, self.ffi.new("int32_t[]", tokens), len(tokens), int(all_logits)))
        rows = range(len(tokens)) if all_logits else [-1]
        return np.stack([np.frombuffer(self.ffi.buffer(self.lib.tactic_get_logits(self.ctx, i), 4 * self.n_vocab),
                                       np.float32).copy() for i in rows])

    def greedy(self, prompt: list[int], n_new: int) -> list[int]:
        self.n.check(self.lib.tactic_context_truncate(self.ctx, 0))
        logits = self.eval(prompt, False)[-1]
        out = []
        for _ in range(n_new):
            t = int(np.argmax(logits))
            out.append(t)
            logits = self.eval([t], False)[-1]
        return out

    def tokenize(self, text: str) -> list[int]:
        b = text.encode()
        cap = len(b) + 8
        buf, n = self.ffi.new("int32_t[]", cap), self.ffi.new("int32_t *")
        self.n.check(self.lib.tactic_tokenize(self.model, b, len(b), 0, 0, buf, cap, n))
        return list(buf[0:n[0]])


def run_one(name: str, work: Path, texts: list[str], outtypes=("f32", "q8_0"), seed: int = 0) -> dict:
    import torch

    from pytactic.convert import convert

    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(ARCHS[name][3], d)
    model = make_model(name, d, len(tok), seed)
    prompt = tok.encode(CORPUS[0], add_special_tokens=False)[:24]
    with torch.no_grad():
        hf_logits = model(torch.tensor([prompt])).logits[0].double().numpy()
        hf_greedy = model.generate(torch.tensor([prompt]), max_new_tokens=16, do_sample=False,
                                   eos_token_id=None, pad_token_id=0)[0, len(prompt):].tolist()
    row = {"arch": name, "hf_class": ARCHS[name][1], "n_prompt": len(prompt)}
    for outtype in outtypes:
        t0 = time.time()
        res = convert(d, work / f"{name}-{outtype}.gguf", outtype)
        rt = Runtime(res.path)
        try:
            ours = rt.eval(prompt, True).astype(np.float64)
            rel = float(np.abs(ours - hf_logits).max() / np.abs(hf_logits).max())
            greedy = rt.greedy(prompt, 16)
            row[outtype] = {
                "logits_rel_err": rel,
                "top1_agree": float(np.mean(ours.argmax(-1) == hf_logits.argmax(-1))),
                "greedy_equal": greedy == hf_greedy,
                "greedy_prefix_equal": next((i for i, (a, b) in enumerate(zip(greedy, hf_greedy)) if a != b), 16),
                "convert_s": round(time.time() - t0, 3),
            }
            if outtype == outtypes[0]:
                try:
                    same = sum(rt.tokenize(t) == tok.encode(t, add_special_tokens=False) for t in texts)
                    row["tokenize_equal"] = f"{same}/{len(texts)}"
                except Exception as e:  # a runtime without a tokenizer yet
                    row["tokenize_equal"] = f"n/a ({type(e).__name__}: {str(e)[:60]})"
        finally:
            rt.close()
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", action="append", choices=list(ARCHS), help="default: all")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    texts = [r["text"] for r in json.loads((REPO / "tests" / "data" / "tokenize.json").read_text())]
    rows = []
    with tempfile.TemporaryDirectory(prefix="convert-parity-") as tmp:
        for name in args.arch or list(ARCHS):
            rows.append(run_one(name, Path(tmp), texts))
    print(f"{'arch':<15}{'f32 rel err':>12}{'f32 greedy':>11}{'q8_0 rel err':>14}{'q8_0 greedy':>12}  tokenize")
    ok = True
    for r in rows:
        f, q = r["f32"], r["q8_0"]
        print(f"{r['arch']:<15}{f['logits_rel_err']:>12.2e}{str(f['greedy_equal']):>11}"
              f"{q['logits_rel_err']:>14.2e}{q['greedy_prefix_equal']:>9}/16  {r.get('tokenize_equal')}")
        ok &= f["logits_rel_err"] < 1e-3 and f["greedy_equal"]
    import torch
    import transformers

    from pytactic import _native

    result = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__},
              "libtactic": {"path": str(_native.LIB_PATH),
                            "build_info": _native.ffi.string(_native.lib.tactic_build_info()).decode()},
              "criteria": "f32: logits_rel_err < 1e-3 and greedy_equal", "all_pass": bool(ok), "rows": rows}
    for dest in filter(None, [args.json, os.environ.get("OUT") and os.path.join(os.environ["OUT"], "convert_parity_torch.json")]):
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        Path(dest).write_text(json.dumps(result, indent=1))
        print("wrote", dest)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
