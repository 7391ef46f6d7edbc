"""How far one decode step's cluster selection predicts the next one's (issue 11's next step).

The GPU's fused step can only start streaming once its cut is known (~12 us at 128K). If the
clusters selected at step t mostly stay selected at step t + 1, a step could start streaming,
before its own cut, the clusters that the previous step's order put well inside the budget.
This measures that on the real Gemma 3 270M (CPU, debug mode): the topics' text prefilled, then
the text's next tokens decoded one a step (teacher-forced); at each step, per global layer and
query head, the clusters' rank in the head's centroid-score order (tactic_get_head_tokens).
For a budget of `frac` of the clustered tokens, sel_t = the clusters taken in rank order until
the budget is reached; pred_t(delta) = the clusters that at step t - 1 lay within the first
(1 - delta) of the budget. Printed per frac and delta, over head-steps:
  coverage  tokens of pred_t in sel_t / tokens of sel_t (what could stream before the cut)
  spill     tokens of pred_t not in sel_t / tokens of sel_t (attended in vain, or a fallback)
  clean     the share of head-steps with no spill at all

    TACTIC_LIB=build/libtactic.so python scripts/tactic_cut_drift.py --ctx 16384 --steps 64
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tactic_common import Ctx, Model, text_tokens  # noqa: E402
from tactic_needle_diag import head_tokens  # noqa: E402


def clusters(crank):
    """{cluster id (its first token): (rank, tokens)} of the clustered tokens (crank >= 0)."""
    idx = np.nonzero(crank >= 0)[0]
    if idx.size == 0:
        return {}
    r = crank[idx]
    order = np.argsort(r, kind="stable")
    r_sorted, t_sorted = r[order], idx[order]
    starts = np.r_[0, np.nonzero(np.diff(r_sorted))[0] + 1]
    ends = np.r_[starts[1:], r_sorted.size]
    return {int(t_sorted[s:e].min()): (int(r_sorted[s]), e - s) for s, e in zip(starts, ends)}


def within(cl, budget):
    """The clusters taken in rank order until `budget` tokens are reached (the last one crossing it)."""
    out, cum = set(), 0
    for cid, (_, n) in sorted(cl.items(), key=lambda kv: kv[1][0]):
        if cum >= budget:
            break
        out.add(cid)
        cum += n
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ctx", type=int, default=16384)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--text", default="topics", choices=["topics", "licenses"])
    ap.add_argument("--fracs", type=float, nargs="+", default=[0.1, 0.194])
    ap.add_argument("--deltas", type=float, nargs="+", default=[0.0, 0.1, 0.25, 0.5])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    model = Model()
    toks = text_tokens(model, args.text, args.ctx + args.steps)
    doc, nxt = toks[: args.ctx], toks[args.ctx :]
    ctx = Ctx(model, args.ctx + args.steps + 16, attention="tactic", selector="bounded", p=0.9,
              n_threads=args.threads)
    t0 = time.time()
    ctx.prefill_cached(doc, f"drift_{args.text}_{args.ctx}")
    print(f"# {args.text} text, {args.ctx} tokens prefilled ({time.time() - t0:.0f} s), {args.steps} decode steps",
          file=sys.stderr)
    layers = [il for il in range(model.n_layer) if (il + 1) % 6 == 0]  # Gemma 3: every sixth layer is global
    ctx.set_debug(True)
    prev = {}
    acc = {(f, d): [] for f in args.fracs for d in args.deltas}
    for t in nxt:
        ctx.eval([t])
        n = ctx.n_past()
        for il in layers:
            for h in range(model.n_head):
                _, _, cr = head_tokens(ctx, il, h, n)
                cl = clusters(cr)
                total = sum(v[1] for v in cl.values())
                if (il, h) in prev and total:
                    pcl, ptot = prev[(il, h)]
                    for f in args.fracs:
                        sel = within(cl, f * total)
                        sel_tok = sum(cl[c][1] for c in sel)
                        for d in args.deltas:
                            pred = within(pcl, (1 - d) * f * ptot)
                            hit = sum(cl[c][1] for c in pred if c in sel)
                            miss = sum(cl[c][1] if c in cl else pcl[c][1] for c in pred if c not in sel)
                            acc[(f, d)].append((hit / sel_tok, miss / sel_tok, miss == 0))
                prev[(il, h)] = (cl, total)
    print("| fraction | delta | head-steps | coverage mean (p10) | spill mean (p90) | clean |")
    print("|---|---|---|---|---|---|")
    for (f, d), rows in acc.items():
        a = np.array(rows, dtype=np.float64)
        print(f"| {f:.3f} | {d:.2f} | {len(a)} | {a[:, 0].mean():.3f} ({np.percentile(a[:, 0], 10):.3f}) | "
              f"{a[:, 1].mean():.3f} ({np.percentile(a[:, 1], 90):.3f}) | {a[:, 2].mean():.3f} |")


if __name__ == "__main__":
    main()
