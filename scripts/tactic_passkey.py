"""Passkey retrieval (refs/README.md's recipe) with full attention vs Tactic, greedy 8
new tokens. The prompt is prefilled once per trial (prefill is always full attention)
up to its last token; that token and 8 greedy ones are decoded with full attention, the
cache is truncated back, and the same is done with Tactic. Trials run from the deepest key to the shallowest so each prompt
shares its filler prefix with the previous one (only the rest is prefilled again).

    TACTIC_LIB=build/libtactic.so python scripts/tactic_passkey.py --ctx 4096 8192 --trials 10
"""

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tactic_common import CACHE, Ctx, Model  # noqa: E402

FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
QUESTION = "What is the pass key? The pass key is"


def prompt_ids(model, n_target, depth, key):
    unit = len(model.tokenize(FILLER * 8, add_special=False)) / 8
    n_units = max(1, int((n_target - 40) / unit))
    k1 = int(round(depth * n_units))
    text = FILLER * k1 + f"The pass key is {key}. Remember it. {key} is the pass key. " + FILLER * (n_units - k1) + QUESTION
    return model.tokenize(text)


def greedy(ctx, n):
    out = []
    for _ in range(n):
        t = int(np.argmax(ctx.logits(-1)))
        out.append(t)
        ctx.eval([t])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ctx", type=int, nargs="+", default=[4096, 8192, 16384])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--depth-min", type=float, default=0.1)
    ap.add_argument("--depth-max", type=float, default=0.9)
    ap.add_argument("--p", type=float, default=0.9)
    ap.add_argument("--n-sink", type=int, default=4)
    ap.add_argument("--n-recent", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--also", default="", help="more selectors to try, e.g. tactic:0.95,prune:0.9")
    args = ap.parse_args()
    model = Model()
    rng = random.Random(args.seed)
    results = {}
    print("| context | trials | full found | Tactic found | Tactic finds every key full finds | prefill s (sum) |")
    print("|---|---|---|---|---|---|")
    for L in args.ctx:
        depths = sorted((rng.uniform(args.depth_min, args.depth_max) for _ in range(args.trials)), reverse=True)
        keys = [rng.randint(10000, 99999) for _ in range(args.trials)]
        # swa_full: the sliding-window layers keep every token, so truncating back to the
        # prompt's end (once per configuration) works
        ctx = Ctx(model, L + 64, attention="tactic", n_sink=args.n_sink, n_recent=args.n_recent, swa_full=1)
        cached = []  # token ids in the cache
        rows, t_pref = [], 0.0
        for depth, key in zip(depths, keys):
            ids = prompt_ids(model, L, depth, key)
            common = 0
            while common < min(len(ids), len(cached)) and ids[common] == cached[common]:
                common += 1
            common = min(common, len(ids) - 1)
            ctx.truncate(common)
            t0 = time.time()
            ctx.prefill(ids[common:], chunk=2048)
            t_pref += time.time() - t0
            # Both answers start the same way: the prompt's last token is decoded again with
            # the attention under test (it is the first decode step), then 8 greedy tokens.
            answers = {}
            extra = [(c, *c.split(":")) for c in args.also.split(",") if c]
            for name, sel, p in [("full", "full", 1.0), ("tactic", "bounded", args.p)] + extra:
                p = float(p)
                ctx.truncate(len(ids) - 1)
                ctx.set_selection(sel, p)
                ctx.eval([ids[-1]])
                answers[name] = greedy(ctx, 8)
            full, tac = answers["full"], answers["tactic"]
            ctx.truncate(len(ids))
            cached = list(ids)
            tf = "".join(model.piece(t) for t in full)
            tt = "".join(model.piece(t) for t in tac)
            row = {"depth": depth, "key": key, "n": len(ids), "full": tf, "tactic": tt,
                   "full_ok": str(key) in tf, "tactic_ok": str(key) in tt}
            for c, *_ in extra:
                txt = "".join(model.piece(t) for t in answers[c])
                row[c] = txt
                print(f"    {c}: {txt!r} {'found' if str(key) in txt else 'MISSED'}", file=sys.stderr, flush=True)
            rows.append(row)
            print(f"  L={L} depth={depth:.2f} key={key} n={len(ids)} full={tf!r} tactic={tt!r}", file=sys.stderr, flush=True)
        nf = sum(r["full_ok"] for r in rows)
        nt = sum(r["tactic_ok"] for r in rows)
        every = all(r["tactic_ok"] for r in rows if r["full_ok"])
        results[L] = rows
        print(f"| {L} | {len(rows)} | {nf}/{len(rows)} | {nt}/{len(rows)} | {'yes' if every else 'NO'} | {t_pref:.0f} |",
              flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / f"passkey_{'_'.join(map(str, args.ctx))}.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main()
