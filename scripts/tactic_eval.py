"""Tactic on gemma3-270m over long real text (Python's pydoc_data/topics.py): selection
quality against the oracle / cluster-order optimum / Quest (the paper's Table 1), and
output quality (KL of next-token distributions vs full attention, perplexity) over
teacher-forced decode positions. One prefill per context length; every configuration
decodes the same positions after truncating back to it.

    TACTIC_LIB=build/libtactic.so python scripts/tactic_eval.py --ctx 8192 --sel-steps 32 --kl-steps 1000
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tactic_common import CACHE, Ctx, Model, kl, log_softmax, long_text_tokens  # noqa: E402

PS = [0.5, 0.7, 0.8, 0.9, 0.95]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def decode(ctx, ids, keep_logits=True, stats=False):
    """Teacher-forced decode of ids, one token a step; returns logits and per-step stats."""
    out, st = [], []
    for t in ids:
        ctx.eval([t])
        if keep_logits:
            out.append(ctx.logits(-1))
        if stats:
            st.append([(s.layer, s.head, s.n_selected, s.n_attended, s.est_mass) for s in ctx.head_stats()])
    return out, st


def selection_quality(ctx, ids, L, steps):
    ctx.set_selection("full", 1.0)
    ctx.set_debug(True)
    rows = []
    for i in range(steps):
        ctx.eval([ids[L + i]])
        rows += ctx.head_eval()
    ctx.set_debug(False)
    ctx.truncate(L)
    return rows


def table_selection(rows, title):
    print(f"\n### Selection quality: {title}")
    print("Per query head and step. Tokens: mean count; 'reached': share of head-steps whose true mass >= P.")
    print("| P | oracle | cluster-order optimum | Tactic | Tactic/oracle | Tactic true mass | reached | est. mass | "
          "degenerate fits | KV-group union | head's mass over union | reached (union) | Quest mass at Tactic's count |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for p in PS:
        r = [x for x in rows if abs(x["p"] - p) < 1e-4]
        if not r:
            continue
        f = lambda k: np.mean([x[k] for x in r])  # noqa: E731
        o, t = f("oracle_tokens"), f("tactic_tokens")
        reach = np.mean([x["tactic_true_mass"] >= p - 1e-6 for x in r])
        ureach = np.mean([x["union_true_mass"] >= p - 1e-6 for x in r])
        print(f"| {p:.2f} | {o:.0f} | {f('cluster_opt_tokens'):.0f} | {t:.0f} | {t / o:.2f}x | {f('tactic_true_mass'):.3f} | "
              f"{100 * reach:.0f}% | {f('tactic_est_mass'):.3f} | {100 * f('degenerate'):.0f}% | {f('union_tokens'):.0f} | "
              f"{f('union_true_mass'):.3f} | {100 * ureach:.0f}% | {f('quest_true_mass'):.3f} |")
    if "prune_tokens" in rows[0]:
        print("\nSelect-then-prune (our extension; candidates = Tactic's prefix for 1 - (1 - P) / 2):")
        print("| P | oracle | candidates scored | kept | kept/oracle | true mass | reached | est. mass |")
        print("|---|---|---|---|---|---|---|---|")
        for p in PS:
            r = [x for x in rows if abs(x["p"] - p) < 1e-4]
            f = lambda k: np.mean([x[k] for x in r])  # noqa: E731
            reach = np.mean([x["prune_true_mass"] >= p - 1e-6 for x in r])
            print(f"| {p:.2f} | {f('oracle_tokens'):.0f} | {f('prune_candidates'):.0f} | {f('prune_tokens'):.0f} | "
                  f"{f('prune_tokens') / f('oracle_tokens'):.2f}x | {f('prune_true_mass'):.3f} | {100 * reach:.0f}% | "
                  f"{f('prune_est_mass'):.3f} |")
    n = len({(x["layer"], x["head"]) for x in rows})
    print(f"({len(rows) // len(PS)} head-steps: {n} (layer, head) pairs x steps; tokens in cache: "
          f"{min(x['n_tokens'] for x in rows)}-{max(x['n_tokens'] for x in rows)})")
    print("\nPer layer at P=0.9 (mean over heads and steps):")
    print("| layer | oracle | Tactic | true mass | reached |")
    print("|---|---|---|---|---|")
    for layer in sorted({x["layer"] for x in rows}):
        r = [x for x in rows if abs(x["p"] - 0.9) < 1e-4 and x["layer"] == layer]
        print(f"| {layer} | {np.mean([x['oracle_tokens'] for x in r]):.0f} | {np.mean([x['tactic_tokens'] for x in r]):.0f} | "
              f"{np.mean([x['tactic_true_mass'] for x in r]):.3f} | {100 * np.mean([x['tactic_true_mass'] >= 0.9 for x in r]):.0f}% |")


SPEED_CONFIGS = [("full", 1.0), ("tactic", 0.9), ("tactic", 0.95), ("prune", 0.9), ("quest", 0.9)]


def speed(ctx, ids, L, rounds):
    """Interleaved A/B timing: each round decodes the same position (after truncating back to
    L) once per configuration, so load from other processes hits all of them alike; medians
    over rounds. Returns per config: decode step s, attention s per global layer, selection s
    per global layer, tokens attended per KV group."""
    out = {f"{s}:{p}": {"step": [], "attn": [], "select": [], "attended": []} for s, p in SPEED_CONFIGS}
    for _ in range(rounds):
        for sel, p in SPEED_CONFIGS:
            ctx.truncate(L)
            ctx.set_selection(sel, p)
            ctx.timings(reset=True)
            ctx.eval([ids[L]])
            tm = ctx.timings(reset=True)
            r = out[f"{sel}:{p}"]
            r["step"].append(tm[2])
            r["attn"].append(tm[3] / 3)
            r["select"].append(tm[4] / 3)
            r["attended"].append(float(np.mean([s.n_attended for s in ctx.head_stats()])))
    ctx.truncate(L)
    return {k: {m: float(np.median(v)) for m, v in r.items()} for k, r in out.items()}


def print_speed(sp, L, rounds):
    print(f"\n### Decode speed after {L} tokens (medians of {rounds} interleaved rounds, 2 threads, shared machine)")
    print("| config | decode tok/s | attention ms / global layer | of which selection | attended / KV group | "
          "attention speedup |")
    print("|---|---|---|---|---|---|")
    base = sp["full:1.0"]["attn"]
    for k, r in sp.items():
        print(f"| {k} | {1 / r['step']:.2f} | {1000 * r['attn']:.2f} | {1000 * r['select']:.2f} | "
              f"{r['attended']:.0f} ({100 * r['attended'] / (L + 1):.1f}%) | {base / r['attn']:.2f}x |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ctx", type=int, default=8192)
    ap.add_argument("--sel-steps", type=int, default=32)
    ap.add_argument("--kl-steps", type=int, default=1000)
    ap.add_argument("--n-sink", type=int, default=4)
    ap.add_argument("--n-recent", type=int, default=64)
    ap.add_argument("--cluster-size", type=int, default=16)
    ap.add_argument("--incremental", type=int, default=1)
    ap.add_argument("--recluster", type=int, default=0)
    ap.add_argument("--configs", default="tactic:0.8,tactic:0.9,tactic:0.95,quest:0.8,quest:0.9,quest:0.95")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--speed-rounds", type=int, default=0)
    ap.add_argument("--tag", default="")
    ap.add_argument("--reprint", action="store_true", help="print the tables of a saved run")
    args = ap.parse_args()

    L = args.ctx
    if args.reprint:
        res = json.loads((CACHE / f"eval_{L}{args.tag}.json").read_text())
        table_selection(res["selection"], f"{L} tokens (saved run)")
        return
    model = Model()
    ids = long_text_tokens(model, L + max(args.kl_steps, args.sel_steps) + 1)
    ctx = Ctx(model, L + max(args.kl_steps, args.sel_steps) + 8, attention="tactic", n_threads=args.threads,
              n_sink=args.n_sink, n_recent=args.n_recent, cluster_size=args.cluster_size,
              tactic_incremental=args.incremental, recluster_interval=args.recluster)
    res = {"args": vars(args)}
    t = ctx.prefill(ids[:L])
    res["prefill_s"] = t
    log(f"prefill {L}: {t:.1f} s")

    if args.sel_steps:
        t0 = time.time()
        rows = selection_quality(ctx, ids, L, args.sel_steps)
        res["selection"] = rows
        res["clustering_s"] = ctx.timings()[1]
        log(f"selection quality: {time.time() - t0:.1f} s")
        table_selection(rows, f"{L} tokens of context, {args.sel_steps} decode steps, sinks {args.n_sink}, "
                              f"recent {args.n_recent}, cluster size {args.cluster_size}")
        print(f"\nclustering (3 global layers, first decode step): {res['clustering_s']:.2f} s = "
              f"{100 * res['clustering_s'] / t:.1f}% of the {t:.1f} s prefill")

    if args.kl_steps:
        tgt = ids[L : L + args.kl_steps]
        nxt = ids[L + 1 : L + args.kl_steps + 1]
        ctx.set_selection("full", 1.0)
        ctx.timings(reset=True)
        t0 = time.time()
        ref, _ = decode(ctx, tgt)
        tfull = time.time() - t0
        tm = ctx.timings(reset=True)
        ctx.truncate(L)
        nll_ref = [-log_softmax(lg)[n] for lg, n in zip(ref, nxt)]
        res["kl"] = {"full": {"ppl": float(np.exp(np.mean(nll_ref))), "s": tfull, "decode_s": tm[2], "attn_s": tm[3],
                              "select_s": tm[4], "cluster_s": tm[1]}}
        log(f"reference decode: {tfull:.1f} s")
        for cfg in args.configs.split(","):
            sel, p = cfg.split(":")
            ctx.set_selection(sel, float(p))
            t0 = time.time()
            lg, st = decode(ctx, tgt, stats=True)
            dt = time.time() - t0
            tm = ctx.timings(reset=True)
            ctx.truncate(L)
            kls = [kl(a, b) for a, b in zip(ref, lg)]
            nll = [-log_softmax(x)[n] for x, n in zip(lg, nxt)]
            agree = np.mean([int(np.argmax(a) == np.argmax(b)) for a, b in zip(ref, lg)])
            sel_tok = np.mean([np.mean([s[2] for s in step]) for step in st])
            att_tok = np.mean([np.mean([s[3] for s in step]) for step in st])
            ntok = np.mean([L + i + 1 for i in range(len(tgt))])
            res["kl"][cfg] = {"kl_mean": float(np.mean(kls)), "kl_p99": float(np.percentile(kls, 99)),
                              "kl_max": float(np.max(kls)), "ppl": float(np.exp(np.mean(nll))), "top1": float(agree),
                              "selected": float(sel_tok), "attended": float(att_tok), "tokens": float(ntok), "s": dt,
                              "decode_s": tm[2], "attn_s": tm[3], "select_s": tm[4], "cluster_s": tm[1]}
            log(f"{cfg}: {res['kl'][cfg]}")
        print(f"\n### Output quality: {args.kl_steps} teacher-forced decode positions after {L} tokens")
        print(f"full attention: perplexity {res['kl']['full']['ppl']:.3f}")
        print("| config | mean KL | p99 KL | max KL | top-1 agreement | perplexity | tokens selected/head | "
              "attended/KV group | of cache |")
        print("|---|---|---|---|---|---|---|---|---|")
        for cfg, r in res["kl"].items():
            if cfg == "full":
                continue
            print(f"| {cfg} | {r['kl_mean']:.5f} | {r['kl_p99']:.4f} | {r['kl_max']:.4f} | {100 * r['top1']:.1f}% | "
                  f"{r['ppl']:.3f} | {r['selected']:.0f} | {r['attended']:.0f} | {100 * r['attended'] / r['tokens']:.1f}% |")


    if args.speed_rounds:
        res["speed"] = speed(ctx, ids, L, args.speed_rounds)
        print_speed(res["speed"], L, args.speed_rounds)

    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"eval_{L}{args.tag}.json"
    out.write_text(json.dumps(res))
    log(f"saved {out}")


if __name__ == "__main__":
    main()
