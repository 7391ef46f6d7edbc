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


def make_model(name: str, directory: Path, vocab_size: int, seed: int, hidden: int = 64):
    import torch
    import transformers

    cfg_cls, model_cls, over, _ = ARCHS[name]
    kw = dict(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=3,
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
        from pytactic.lowlevel import NativeSession

        self.n, self.ffi, self.lib = n, n.ffi, n.lib
        self.session = NativeSession(path, n_ctx=n_ctx, attention=self.lib.TACTIC_ATTN_FULL)
        self.model, self.ctx, self.n_vocab = self.session.model, self.session.ctx, self.session.n_vocab

    def close(self):
        self.session.close()

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


def run_one(name: str, work: Path, texts: list[str], outtypes=("f32", "q8_0"), seed: int = 0,
            hidden: int = 64) -> dict:
    import torch

    from pytactic.convert import convert

    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(ARCHS[name][3], d)
    model = make_model(name, d, len(tok), seed, hidden)
    prompt = tok.encode(CORPUS[0], add_special_tokens=False)[:24]
    with torch.no_grad():
        hf_logits = model(torch.tensor([prompt])).logits[0].double().numpy()
        hf_greedy = model.generate(torch.tensor([prompt]), max_new_tokens=16, do_sample=False,
                                   eos_token_id=None, pad_token_id=0)[0, len(prompt):].tolist()
    row = {"arch": name, "hf_class": ARCHS[name][1], "n_prompt": len(prompt), "hidden_size": hidden}
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
                "types": sorted(set(res.types.values())),
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
    ap.add_argument("--outtype", action="append", help="output types to compare (default: f32 and q8_0); "
                    "f32 comes first whatever the order")
    ap.add_argument("--hidden", type=int, default=64, help="hidden size (256 lets the K-quants apply)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--real-gemma", metavar="GGUF", help="instead: rebuild an HF checkpoint from this Gemma 3 "
                    "270M GGUF (llama.cpp's), convert it back, compare with tests/data/greedy.json and transformers")
    args = ap.parse_args(argv)
    if args.real_gemma:
        return real_gemma_main(Path(args.real_gemma), args.json)
    outtypes = ["f32"] + [t for t in (args.outtype or ["q8_0"]) if t != "f32"]
    texts = [r["text"] for r in json.loads((REPO / "tests" / "data" / "tokenize.json").read_text())]
    rows = []
    with tempfile.TemporaryDirectory(prefix="convert-parity-") as tmp:
        for name in args.arch or list(ARCHS):
            rows.append(run_one(name, Path(tmp), texts, outtypes, hidden=args.hidden))
    head = f"{'arch':<15}" + "".join(f"{t + ' rel err':>15}{t + ' greedy':>14}" for t in outtypes)
    print(head + "  tokenize")
    ok = True
    for r in rows:
        line = f"{r['arch']:<15}"
        for t in outtypes:
            line += f"{r[t]['logits_rel_err']:>15.2e}{r[t]['greedy_prefix_equal']:>11}/16"
        print(line + f"  {r.get('tokenize_equal')}")
        f = r["f32"]
        ok &= f["logits_rel_err"] < 1e-3 and f["greedy_equal"]
    import torch
    import transformers

    from pytactic import _native

    result = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__},
              "libtactic": {"path": str(_native.LIB_PATH),
                            "build_info": _native.ffi.string(_native.lib.tactic_build_info()).decode()},
              "criteria": "f32: logits_rel_err < 1e-3 and greedy_equal (16 tokens); greedy_prefix_equal = tokens "
              "equal before the first difference", "outtypes": outtypes, "hidden_size": args.hidden, "all_pass": bool(ok), "rows": rows}
    for dest in filter(None, [args.json, os.environ.get("OUT") and os.path.join(os.environ["OUT"], "convert_parity_torch.json")]):
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        Path(dest).write_text(json.dumps(result, indent=1))
        print("wrote", dest)
    return 0 if ok else 1



# ---------------------------------------------------------------------------------
# A real model: Gemma 3 270M, rebuilt as an HF checkpoint from llama.cpp's Q4_K_M GGUF
# (weights dequantized, norms minus the +1, tokenizer.model rebuilt from the vocab),
# converted back, and compared with llama.cpp's reference logits and with transformers.

GEMMA_NORMS = {"attn_norm": "input_layernorm", "post_attention_norm": "post_attention_layernorm",
               "ffn_norm": "pre_feedforward_layernorm", "post_ffw_norm": "post_feedforward_layernorm",
               "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm"}
GEMMA_MATS = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
              "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
              "ffn_down": "mlp.down_proj"}


def gemma_checkpoint_from_gguf(gguf_path: Path, d: Path) -> dict:
    """Write an HF Gemma3ForCausalLM checkpoint holding exactly the GGUF's weights."""
    import gguf
    from safetensors.numpy import save_file

    sys.path.insert(0, str(REPO / "tests"))
    import convert_checkpoints as cc

    d.mkdir(parents=True, exist_ok=True)
    r = gguf.GGUFReader(gguf_path)
    f = {k: v.contents() for k, v in r.fields.items() if not k.startswith("GGUF.")}
    a = "gemma3."
    n_layer = int(f[a + "block_count"])
    cfg = {
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
        "vocab_size": len(f["tokenizer.ggml.tokens"]), "hidden_size": int(f[a + "embedding_length"]),
        "intermediate_size": int(f[a + "feed_forward_length"]), "num_hidden_layers": n_layer,
        "num_attention_heads": int(f[a + "attention.head_count"]),
        "num_key_value_heads": int(f[a + "attention.head_count_kv"]),
        "head_dim": int(f[a + "attention.key_length"]), "max_position_embeddings": int(f[a + "context_length"]),
        "rms_norm_eps": float(f[a + "attention.layer_norm_rms_epsilon"]), "rope_theta": float(f[a + "rope.freq_base"]),
        "rope_local_base_freq": 10000.0, "sliding_window": int(f[a + "attention.sliding_window"]),
        "layer_types": ["sliding_attention" if i % 6 < 5 else "full_attention" for i in range(n_layer)],
        "query_pre_attn_scalar": int(f[a + "attention.key_length"]), "hidden_activation": "gelu_pytorch_tanh",
        "final_logit_softcapping": None, "attn_logit_softcapping": None, "tie_word_embeddings": True,
        "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0, "torch_dtype": "float32",
    }
    (d / "config.json").write_text(json.dumps(cfg, indent=1))
    weights = {}
    for t in r.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).reshape([int(x) for x in reversed(t.shape)])
        w = np.ascontiguousarray(w, dtype=np.float32)
        parts = t.name.split(".")
        if parts[0] == "blk":
            kind, il = parts[2], parts[1]
            if kind in GEMMA_NORMS:
                weights[f"model.layers.{il}.{GEMMA_NORMS[kind]}.weight"] = w - np.float32(1)
            else:
                weights[f"model.layers.{il}.{GEMMA_MATS[kind]}.weight"] = w
        elif parts[0] == "token_embd":
            weights["model.embed_tokens.weight"] = w
        elif parts[0] == "output_norm":
            weights["model.norm.weight"] = w - np.float32(1)
    save_file(weights, str(d / "model.safetensors"), metadata={"format": "pt"})
    del weights
    tokens, types = f["tokenizer.ggml.tokens"], [int(x) for x in f["tokenizer.ggml.token_type"]]
    scores = [float(x) for x in f["tokenizer.ggml.scores"]]
    pieces = [(tok.replace(" ", "\u2581") if ty == 4 else tok, s if ty in (1, 6) else 0.0, ty)
              for tok, s, ty in zip(tokens, scores, types)]
    (d / "tokenizer.model").write_bytes(cc.spm_model_bytes(pieces, add_dummy_prefix=False))
    added = {str(i): {"content": pieces[i][0], "special": ty in (2, 3)} for i, ty in enumerate(types) if ty in (2, 3, 4)}
    (d / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>",
         "add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": added}))
    return cfg


def gemma_round_trip(gguf_path: Path, work: Path, greedy_refs: list[dict], outtypes=("f32", "q4_k_m"),
                     with_hf: bool = True, n_hf_prompts: int = 2, n_hf_greedy: int = 8) -> dict:
    """The real-model check; returns a JSON-able dict. transformers is compared on the
    f32 conversion only, on a few prompts (an f32 270M model is slow on a small CPU)."""
    import gguf

    from pytactic.convert import convert

    ckpt = work / "gemma-hf"
    cfg = gemma_checkpoint_from_gguf(gguf_path, ckpt)
    original = {t.name: t for t in gguf.GGUFReader(gguf_path).tensors}
    out: dict = {"model": str(gguf_path.name), "n_layer": cfg["num_hidden_layers"],
                 "llama_cpp_refs": "tests/data/greedy.json (llama.cpp on the Q4_K_M file)"}
    for outtype in outtypes:
        t0 = time.time()
        res = convert(ckpt, work / f"gemma-{outtype}.gguf", outtype)
        row: dict = {"convert_s": round(time.time() - t0, 1)}
        if outtype == "q4_k_m":
            row["types_equal_llama_cpp"] = res.types == {n: gguf.GGMLQuantizationType(t.tensor_type).name
                                                         for n, t in original.items()}
            same: dict = {}
            for t in gguf.GGUFReader(res.path).tensors:
                o = original[t.name]
                name = gguf.GGMLQuantizationType(t.tensor_type).name
                eq = np.array_equal(np.asarray(t.data).view(np.uint8), np.asarray(o.data).view(np.uint8))
                k, n = same.get(name, (0, 0))
                same[name] = (k + int(eq), n + 1)
            row["tensors_byte_identical_to_llama_cpp"] = {k: f"{a}/{b}" for k, (a, b) in same.items()}
        rt = Runtime(res.path, n_ctx=512)
        try:
            rels, top1, top1_clear, n_clear, prefix_ok = [], 0, 0, 0, 0
            for ref in greedy_refs:
                rt.n.check(rt.lib.tactic_context_truncate(rt.ctx, 0))
                last = rt.eval(ref["prompt_ids"], False)[-1]
                ids = [i for i, _ in ref["top20"]]
                want = np.array([v for _, v in ref["top20"]])
                rels.append(float(np.abs(last[ids] - want).max() / np.abs(want).max()))
                top1 += int(np.argmax(last) == ids[0])
                if ref["top20"][0][1] - ref["top20"][1][1] > 0.25:  # llama.cpp's top two not near-tied
                    n_clear += 1
                    top1_clear += int(np.argmax(last) == ids[0])
                k = ref["stable_prefix_len"]
                prefix_ok += int(rt.greedy(ref["prompt_ids"], k) == ref["greedy_ids"][:k])
            row.update({
                "vs_llama_cpp_top20_rel_err_max": max(rels),
                "vs_llama_cpp_top1_agree": f"{top1}/{len(greedy_refs)}",
                "vs_llama_cpp_top1_agree_margin_over_0.25": f"{top1_clear}/{n_clear}",
                "vs_llama_cpp_stable_greedy_prefix_equal": f"{prefix_ok}/{len(greedy_refs)}",
            })
            if with_hf and outtype == "f32":
                import torch
                import transformers

                hf = transformers.Gemma3ForCausalLM.from_pretrained(ckpt, dtype=torch.float32,
                                                                    attn_implementation="eager").eval()
                hf_rels, hf_greedy = [], []
                for ref in greedy_refs[:n_hf_prompts]:
                    p = ref["prompt_ids"]
                    with torch.no_grad():
                        hl = hf(torch.tensor([p])).logits[0].double().numpy()
                        hg = hf.generate(torch.tensor([p]), max_new_tokens=n_hf_greedy, do_sample=False,
                                         eos_token_id=None, pad_token_id=0)[0, len(p):].tolist()
                    rt.n.check(rt.lib.tactic_context_truncate(rt.ctx, 0))
                    ours = rt.eval(p, True).astype(np.float64)
                    hf_rels.append(float(np.abs(ours - hl).max() / np.abs(hl).max()))
                    hf_greedy.append(rt.greedy(p, n_hf_greedy) == hg)
                del hf
                row["vs_hf_logits_rel_err_max"] = max(hf_rels)
                row[f"vs_hf_greedy{n_hf_greedy}_equal"] = f"{sum(hf_greedy)}/{len(hf_greedy)}"
        finally:
            rt.close()
        out[outtype] = row
    return out


def real_gemma_main(path: Path, json_path: str | None) -> int:
    greedy_refs = json.loads((REPO / "tests" / "data" / "greedy.json").read_text())
    try:
        import transformers  # noqa: F401

        with_hf = True
    except ImportError:
        with_hf = False
    with tempfile.TemporaryDirectory(prefix="convert-gemma-") as tmp:
        res = gemma_round_trip(path, Path(tmp), greedy_refs, with_hf=with_hf)
    print(json.dumps(res, indent=1))
    for dest in filter(None, [json_path, os.environ.get("OUT") and os.path.join(os.environ["OUT"], "convert_gemma_real.json")]):
        Path(dest).write_text(json.dumps(res, indent=1))
        print("wrote", dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
