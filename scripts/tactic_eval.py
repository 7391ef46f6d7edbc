"""Tactic on gemma3-270m over long real text (the pydoc topics' text, or the licences of
/usr/share/common-licenses): selection quality of the active selector against the exact
top-p oracle, per head and per KV group, over decode positions spread across a long
teacher-forced decode (so old clusters and freshly clustered blocks are both in the
sample); output quality (KL of next-token distributions vs full attention, perplexity);
decode speed. One prefill per run; every configuration decodes the same positions after
truncating back to it.

    TACTIC_LIB=build/libtactic.so python scripts/tactic_eval.py --ctx 8192 --sel-positions 2048 --debug-every 16
    TACTIC_LIB=build/libtactic.so python scripts/tactic_eval.py --ctx 8192 --kl-steps 1000 --configs bounded:0.9,quest:0.9
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tactic_common import CACHE, Ctx, Model, kl, log_softmax, text_tokens  # noqa: E402

PS = [0.5, 0.7, 0.8, 0.9, 0.95]


def parse_cfg(cfg):
    """'selector:p[:mM][:vV]' -> (selector, p, margin, tail_values); m (target margin, share of
    1 - p) and v (1/0: the tail output estimate) apply to the bounded selector, defaults 0.1, 1."""
    parts = cfg.split(":")
    margin, tail = 0.1, True
    for x in parts[2:]:
        if x.startswith("m"):
            margin = float(x[1:])
        elif x.startswith("v"):
            tail = x[1:] != "0"
        else:
            raise SystemExit(f"bad config option {x!r} in {cfg!r}")
    return parts[0], float(parts[1]), margin, tail


def apply_cfg(ctx, cfg):
    sel, p, margin, tail = parse_cfg(cfg)
    ctx.set_selection(sel, p)
    ctx.set_bounded_options(margin, tail)
    return sel, p


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


def head_steps(ctx, ids, L, positions, every, cfg):
    """Teacher-forced decode of `positions` tokens after L with the given configuration; every
    `every`-th step runs in debug mode (true masses, oracle counts). Returns one row per
    (debug step, global layer, query head)."""
    apply_cfg(ctx, cfg)
    rows = []
    for i in range(positions):
        dbg = i % every == every - 1
        if dbg:
            ctx.set_debug(True)
        ctx.eval([ids[L + i]])
        if dbg:
            for s in ctx.head_stats():
                rows.append({"step": i, "layer": s.layer, "head": s.head, "n_tokens": s.n_tokens,
                             "selected": s.n_selected, "attended": s.n_attended, "scored": s.n_scored,
                             "true_mass": s.true_mass, "est_mass": s.est_mass, "oracle": s.oracle_tokens,
                             "oracle_union": s.oracle_union, "est_over_true": s.est_over_true_total})
            ctx.set_debug(False)
    ctx.truncate(L)
    return rows


def table_heads(rows, p, title):
    print(f"\n### Selection quality: {title}")
    r = rows
    sel = np.array([x["selected"] for x in r], float)
    orc = np.array([x["oracle"] for x in r], float)
    tm = np.array([x["true_mass"] for x in r], float)
    eot = np.array([x["est_over_true"] for x in r], float)
    reach = np.mean(tm >= p - 1e-6)
    print(f"{len(r)} head-steps ({len({(x['layer'], x['head']) for x in r})} (layer, head) pairs); cache "
          f"{min(x['n_tokens'] for x in r)}-{max(x['n_tokens'] for x in r)} tokens; decode steps since the prefill "
          f"{min(x['step'] for x in r)}-{max(x['step'] for x in r)}")
    print("| P | oracle (mean) | selected (mean) | selected/oracle (ratio of means) | median per-step ratio | "
          "p90 per-step ratio | true mass (mean) | reached P | est/true total p10 | p50 | p90 | scored/KV group |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    ratio = sel / orc
    sc = np.mean([x["scored"] for x in r])
    print(f"| {p} | {orc.mean():.0f} | {sel.mean():.0f} | {sel.mean() / orc.mean():.2f}x | {np.median(ratio):.2f}x | "
          f"{np.percentile(ratio, 90):.2f}x | {tm.mean():.4f} | {100 * reach:.1f}% | "
          f"{np.percentile(eot, 10):.3f} | {np.percentile(eot, 50):.3f} | {np.percentile(eot, 90):.3f} | {sc:.0f} |")
    g = {}
    for x in r:  # one entry per (step, layer): the KV group (gemma3-270m: one KV head)
        g[(x["step"], x["layer"])] = (x["attended"], x["oracle_union"], x["n_tokens"])
    att = np.array([v[0] for v in g.values()], float)
    ou = np.array([v[1] for v in g.values()], float)
    nt = np.array([v[2] for v in g.values()], float)
    print(f"\nPer KV group ({len(g)} group-steps): union attended {att.mean():.0f} ({100 * np.mean(att / nt):.1f}% of "
          f"the cache) vs union of the heads' oracle sets {ou.mean():.0f}: {att.mean() / ou.mean():.2f}x "
          f"(median per step {np.median(att / ou):.2f}x, p90 {np.percentile(att / ou, 90):.2f}x)")
    print("\nPer layer:")
    print("| layer | oracle | selected | selected/oracle | true mass | reached |")
    print("|---|---|---|---|---|---|")
    for layer in sorted({x["layer"] for x in r}):
        rl = [x for x in r if x["layer"] == layer]
        o = np.mean([x["oracle"] for x in rl])
        s_ = np.mean([x["selected"] for x in rl])
        print(f"| {layer} | {o:.0f} | {s_:.0f} | {s_ / o:.2f}x | {np.mean([x['true_mass'] for x in rl]):.4f} | "
              f"{100 * np.mean([x['true_mass'] >= p - 1e-6 for x in rl]):.1f}% |")
    return {"oracle": orc.mean(), "selected": sel.mean(), "reach": reach, "true_mass": tm.mean(),
            "eot_p10": np.percentile(eot, 10), "union_ratio": att.mean() / ou.mean()}


SPEED_CONFIGS = [("full", 1.0), ("bounded", 0.9), ("quest", 0.9)]


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
            ctx.set_bounded_options()
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
    ap.add_argument("--text", choices=["topics", "licenses"], default="topics")
    ap.add_argument("--p", type=float, default=0.9)
    ap.add_argument("--selector", default="bounded", help="for the selection table: selector[:mM][:vV]")
    ap.add_argument("--sel-positions", type=int, default=0, help="teacher-forced decode steps for selection quality")
    ap.add_argument("--debug-every", type=int, default=16, help="every k-th of them is measured")
    ap.add_argument("--kl-steps", type=int, default=0)
    ap.add_argument("--n-sink", type=int, default=4)
    ap.add_argument("--n-recent", type=int, default=64)
    ap.add_argument("--cluster-size", type=int, default=16)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--configs", default="bounded:0.9,quest:0.9")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--speed-rounds", type=int, default=0)
    ap.add_argument("--speed-steps", type=int, default=0,
                    help="decode this many teacher-forced steps with full attention, then with each config; tok/s")
    ap.add_argument("--tag", default="")
    ap.add_argument("--n-ctx", type=int, default=0,
                    help="context size (default ctx + 4096); past the model's training context (32,768 for "
                         "gemma3-270m) the cache does not hold the decode steps")
    ap.add_argument("--no-prefill-cache", action="store_true", help="always prefill (no saved KV state)")
    args = ap.parse_args()

    L = args.ctx
    model = Model()
    extra = max(args.kl_steps, args.sel_positions, args.speed_steps) + 1
    ids = text_tokens(model, args.text, L + extra)
    n_ctx = L + 4096 if extra + 8 <= 4096 else L + extra + 8  # one size per L: prefill states are reused
    if args.n_ctx:
        n_ctx = args.n_ctx
    ctx = Ctx(model, n_ctx, attention="tactic", selector=args.selector.split(":")[0], p=args.p, n_threads=args.threads,
              n_sink=args.n_sink, n_recent=args.n_recent, cluster_size=args.cluster_size,
              tactic_block_size=args.block, swa_full=1)  # full sliding-window cache: truncating back works
    sel_cfg = args.selector if ":" in args.selector else f"{args.selector}:{args.p}"
    sel_name, _, _, _ = parse_cfg(sel_cfg)
    res = {"args": vars(args)}
    t = ctx.prefill_cached(ids[:L], f"{args.text}_{L}") if not args.no_prefill_cache else ctx.prefill(ids[:L])
    res["prefill_s"] = t
    log(f"prefill {L} ({args.text}): {t:.1f} s")

    if args.sel_positions:
        t0 = time.time()
        rows = head_steps(ctx, ids, L, args.sel_positions, args.debug_every, sel_cfg)
        res["selection"] = rows
        log(f"selection quality: {time.time() - t0:.1f} s")
        res["summary"] = table_heads(rows, args.p, f"{sel_cfg}, {L} tokens of {args.text}, "
                                     f"{args.sel_positions} decode steps, every {args.debug_every}th measured")
        ctx.timings(reset=True)

    if args.kl_steps:
        tgt = ids[L : L + args.kl_steps]
        nxt = ids[L + 1 : L + args.kl_steps + 1]
        apply_cfg(ctx, "full:1.0")
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
            apply_cfg(ctx, cfg)
            t0 = time.time()
            lg, st = decode(ctx, tgt, stats=True)
            dt = time.time() - t0
            tm = ctx.timings(reset=True)
            ctx.truncate(L)
            kls = [kl(a, b) for a, b in zip(ref, lg)]
            nll = [-log_softmax(x)[n] for x, n in zip(lg, nxt)]
            agree = np.mean([int(np.argmax(a) == np.argmax(b)) for a, b in zip(ref, lg)])
            sel_tok = np.mean([np.mean([s[2] for s in step]) for step in st if step] or [0])
            att_tok = np.mean([np.mean([s[3] for s in step]) for step in st if step] or [0])
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


    if args.speed_steps:
        res["speed_steps"] = {}
        for cfg in ["full:1.0"] + args.configs.split(",")[:1]:
            ctx.truncate(L)
            apply_cfg(ctx, cfg)
            ctx.timings(reset=True)
            t0, c0 = time.time(), time.process_time()
            decode(ctx, ids[L : L + args.speed_steps], keep_logits=False)
            wall, cpu = time.time() - t0, time.process_time() - c0
            tm = ctx.timings(reset=True)
            res["speed_steps"][cfg] = {"wall_s": wall, "cpu_s": cpu, "decode_s": tm[2], "attn_s": tm[3],
                                       "select_s": tm[4], "cluster_s": tm[1], "share": tm[5]}
            log(f"speed {cfg}: {res['speed_steps'][cfg]}")
        ctx.truncate(L)
        n = args.speed_steps
        print(f"\n### Decode speed: {n} teacher-forced steps after {L} tokens ({args.threads} threads, shared machine)")
        print("| config | decode tok/s (wall) | CPU ms / token (all threads) | attention ms / token (3 global layers) | "
              "of which selection | clustering s (blocks) | attended share / head |")
        print("|---|---|---|---|---|---|---|")
        for cfg, r in res["speed_steps"].items():
            share = "-" if r["share"] < 0 else f"{100 * r['share']:.1f}%"
            print(f"| {cfg} | {n / r['wall_s']:.2f} | {1000 * r['cpu_s'] / n:.1f} | {1000 * r['attn_s'] / n:.2f} | "
                  f"{1000 * r['select_s'] / n:.2f} | {r['cluster_s']:.2f} | {share} |")

    if args.speed_rounds:
        res["speed"] = speed(ctx, ids, L, args.speed_rounds)
        print_speed(res["speed"], L, args.speed_rounds)

    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"eval_{L}_{args.text}{args.tag}.json"
    out.write_text(json.dumps(res, default=float))
    log(f"saved {out}")


if __name__ == "__main__":
    main()
