"""Tasks where fixed top-k selection is known to fail (RULER's multi-key needle and
common-words aggregation, the MagicPIG finding), on gemma3-270m: full attention vs Tactic
(the bounded selector at P) vs Quest with, per head and step, as many tokens as Tactic kept.

The document is prefilled once (full attention, as every prompt is); the question and the
answer then go through decode one token a step, so every token after the document reads
it through the selector under test. Greedy answers.

- multikey: K lines "The pass code of <name> is <5 digits>." at random depths in filler
  text (the pydoc topics' text); one question per key.
- aggregation: a list of words, one of which appears far more often than the others;
  the question asks for the most frequent word.

    TACTIC_LIB=build/libtactic.so python scripts/tactic_tasks.py --ctx 4096 8192 16384
"""

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tactic_common import Ctx, Model, text_tokens  # noqa: E402

NAMES = ["Alice", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas"]
WORDS = ["apple", "river", "stone", "cloud", "tiger", "lemon", "chair", "piano", "rocket", "forest", "candle",
         "window", "garden", "silver", "bridge", "mirror", "planet", "violin", "desert", "harbor"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def multikey_doc(model, n_ctx, n_keys, rng):
    filler = text_tokens(model, "topics", n_ctx)[1:]  # without BOS
    keys = {name: str(rng.randrange(10000, 99999)) for name in rng.sample(NAMES, n_keys)}
    lines = [model.tokenize(f"\nThe pass code of {n} is {v}.\n", add_special=False) for n, v in keys.items()]
    budget = n_ctx - 1 - sum(len(x) for x in lines) - 40
    body = filler[:budget]
    cuts = sorted(rng.sample(range(len(body) // 20, len(body) - len(body) // 20), n_keys))
    ids = [model.tokenize("x", add_special=True)[0]]  # BOS
    prev = 0
    for c, line in zip(cuts, lines):
        ids += body[prev:c] + line
        prev = c
    ids += body[prev:]
    questions = [(f"\nQuestion: what is the pass code of {n}?\nAnswer: The pass code of {n} is", v)
                 for n, v in keys.items()]
    return ids, questions


def aggregation_doc(model, n_ctx, rng):
    top = rng.choice(WORDS)
    others = [w for w in WORDS if w != top]
    head = model.tokenize("Here is a long list of words, one per line:\n", add_special=True)
    ids = list(head)
    while len(ids) < n_ctx - 40:
        w = top if rng.random() < 0.3 else rng.choice(others)
        ids += model.tokenize(f"{w}\n", add_special=False)
    q = "\nQuestion: which word is repeated most often in the list above?\nAnswer: The most frequent word is \""
    return ids[: n_ctx - 40], [(q, top)]


def answer(ctx, model, L, question, selector, p, n_new=6):
    ctx.truncate(L)
    ctx.set_selection(selector, p)
    q = model.tokenize(question, add_special=False)
    for t in q:  # decode path, one token a step
        ctx.eval([t])
    out = []
    n_sel = []
    for _ in range(n_new):
        lg = ctx.logits(-1)
        t = int(lg.argmax())
        out.append(t)
        ctx.eval([t])
        n_sel.append(sum(s.n_attended for s in ctx.head_stats()) / max(1, len(ctx.head_stats())))
    return "".join(model.piece(t) for t in out), sum(n_sel) / len(n_sel) / (L + len(q) + n_new / 2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ctx", type=int, nargs="+", default=[4096, 8192, 16384])
    ap.add_argument("--keys", type=int, default=4)
    ap.add_argument("--p", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tasks", nargs="+", default=["multikey", "aggregation"], choices=["multikey", "aggregation"])
    ap.add_argument("--margin", type=float, default=None, help="bounded selector's target margin (default: the library's)")
    ap.add_argument("--no-tail-values", action="store_true", help="bounded selector without the output estimate")
    args = ap.parse_args()
    model = Model()
    rng = random.Random(args.seed)
    methods = [("full", "full", 1.0), (f"tactic P={args.p}", "bounded", args.p),
               ("quest (Tactic's count)", "quest", args.p)]
    print("| context | task | question | expected | " + " | ".join(m[0] for m in methods) + " |")
    print("|---|---|---|---|" + "---|" * len(methods))
    totals = {}
    for n_ctx in args.ctx:
        for task in args.tasks:
            doc, qs = multikey_doc(model, n_ctx, args.keys, rng) if task == "multikey" else aggregation_doc(model, n_ctx, rng)
            ctx = Ctx(model, n_ctx + 128, attention="tactic", selector="bounded", p=args.p, n_threads=args.threads)
            if args.margin is not None or args.no_tail_values:
                ctx.set_bounded_options(0.1 if args.margin is None else args.margin, not args.no_tail_values)
            t0 = time.time()
            ctx.prefill(doc)
            log(f"{task} {n_ctx}: prefill {len(doc)} tokens {time.time() - t0:.0f} s")
            L = len(doc)
            for qi, (q, expect) in enumerate(qs):
                cells = []
                for name, sel, p in methods:
                    text, att = answer(ctx, model, L, q, sel, p)
                    ok = expect in text
                    key = (n_ctx, task, name)
                    totals[key] = (totals.get(key, (0, 0))[0] + ok, totals.get(key, (0, 0))[1] + 1)
                    share = f", {100 * att:.0f}% attended" if sel != "full" else ""
                    cells.append(f"{'OK' if ok else 'miss'} `{text.strip()[:16]}`{share}")
                print(f"| {n_ctx} | {task} | {qi} | {expect} | " + " | ".join(cells) + " |", flush=True)
    print("\n| context | task | " + " | ".join(m[0] for m in methods) + " |")
    print("|---|---|" + "---|" * len(methods))
    for n_ctx in args.ctx:
        for task in args.tasks:
            row = [totals[(n_ctx, task, m[0])] for m in methods]
            print(f"| {n_ctx} | {task} | " + " | ".join(f"{a}/{b}" for a, b in row) + " |")


if __name__ == "__main__":
    main()
