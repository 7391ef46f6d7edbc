"""Why a multi-key question is answered differently by Tactic and full attention: at the
decode steps of the expected answer (teacher-forced), per global layer and query head, the
attention mass full attention puts on the asked key's line and on a competing key's line,
whether those tokens are in Tactic's selection (kept by the head, attended by the group,
scored exactly), the rank of their clusters in the head's centroid order, the mass
Tactic's kept set reaches, and the logit margin between the right and the wrong token.
Then greedy answers under controls (other selectors and targets) on the same document.

The document is tactic_tasks.py's: `--seed S --ctx A B` builds the documents of A then B
from one random generator, as that script does (so the 16K document of `--ctx 8192 16384`
needs the 8K one drawn first; only the last length is prefilled). Debug mode.

    TACTIC_LIB=build/libtactic.so python scripts/tactic_needle_diag.py --seed 9 --ctx 8192 16384 \\
        --question 2 --wrong 3
"""

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tactic_common import Ctx, Model, ffi, lib  # noqa: E402
from pytactic._native import check  # noqa: E402
from tactic_tasks import answer, multikey_doc  # noqa: E402


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def head_tokens(ctx, layer, head, n):
    w = np.zeros(n, np.float32)
    fl = np.zeros(n, np.uint8)
    cr = np.zeros(n, np.int32)
    n_out = ffi.new("int32_t *")
    check(lib.tactic_get_head_tokens(ctx.h, layer, head, ffi.cast("float *", w.ctypes.data),
                                     ffi.cast("uint8_t *", fl.ctypes.data), ffi.cast("int32_t *", cr.ctypes.data),
                                     n, n_out))
    return w[: n_out[0]], fl[: n_out[0]], cr[: n_out[0]]


def find(seq, sub):
    for i in range(len(seq) - len(sub) + 1):
        if seq[i : i + len(sub)] == sub:
            return i
    raise ValueError("sub-sequence not found")


def line_span(model, doc, name, value):
    line = model.tokenize(f"\nThe pass code of {name} is {value}.\n", add_special=False)
    s = find(doc, line)
    # the key's own tokens: the digits (and what surrounds them inside the line)
    val = model.tokenize(f" {value}", add_special=False)
    return list(range(s, s + len(line))), line, val


def teacher_forced(ctx, model, L, question, ans_tokens, selector, p, layers, n_head, debug=True):
    """Decodes question + answer tokens through `selector`; returns, per answer step
    (the step whose logits predict ans_tokens[i]), logits and the per-head token details."""
    ctx.truncate(L)
    ctx.set_selection(selector, p)
    ctx.set_debug(debug)
    q = model.tokenize(question, add_special=False)
    for t in q[:-1]:
        ctx.eval([t])
    steps = []
    feed = [q[-1]] + ans_tokens[:-1]
    for t in feed:
        ctx.eval([t])
        n = ctx.n_past()
        det = {(il, h): head_tokens(ctx, il, h, n) for il in layers for h in range(n_head)}
        steps.append((ctx.logits(-1), det, [s for s in ctx.head_stats()]))
    ctx.set_debug(False)
    return steps


def decisive_controls(ctx, model, L, question, right, wrong, args):
    """The first answer step where the right and the wrong key differ, alone: the prefix
    (question and the answer's tokens before it) decoded once with full attention, then
    that one step under each configuration; its margin logit(right) - logit(wrong) and its
    KL to full attention's next-token distribution."""
    from tactic_common import kl

    i = next(j for j in range(min(len(right), len(wrong))) if right[j] != wrong[j])
    q = model.tokenize(question, add_special=False)
    ctx.truncate(L)
    ctx.set_selection("full", 1.0)
    ctx.set_noise(0)
    for t in q + right[: i - 1]:
        ctx.eval([t])
    n_pre = ctx.n_past()

    def step(sel, p, sigma=0.0, seed=0, margin=None, tail_values=True):
        ctx.truncate(n_pre)
        ctx.set_selection(sel, p)
        ctx.set_noise(sigma, seed)
        if margin is not None or not tail_values:
            ctx.set_bounded_options(0.1 if margin is None else margin, tail_values)
        ctx.eval([right[i - 1]])
        lg = ctx.logits(-1)
        ctx.set_noise(0)
        ctx.set_bounded_options(0.1, True)
        return lg

    ref = step("full", 1.0)
    r, w = right[i], wrong[i]
    print(f"\n### the decisive step alone (answer token {i}: {model.piece(r)!r} vs {model.piece(w)!r}; "
          f"prefix decoded with full attention)")
    print("| configuration | margin right - wrong | answers | KL to full |")
    print("|---|---|---|---|")

    def row(name, lg):
        top = int(lg.argmax())
        print(f"| {name} | {lg[r] - lg[w]:+.3f} | {model.piece(top)!r} | {kl(ref, lg):.5f} |", flush=True)
        return lg[r] - lg[w]

    row("full", ref)
    for sel, p in (("oracle", 0.9), ("oracle", 0.95), ("oracle", 0.99), ("oracle", 0.995), ("oracle", 0.999),
                   ("bounded", 0.9), ("bounded", 0.95), ("bounded", 0.99), ("quest", 0.9), ("quest", 0.99),
                   ("tactic", 0.9), ("prune", 0.9)):
        row(f"{sel} P={p}", step(sel, p))
    row("bounded P=0.9, no output estimate", step("bounded", 0.9, tail_values=False))
    row("bounded P=0.9, margin 0", step("bounded", 0.9, margin=0.0))
    print("\nfull attention with Gaussian noise on the queries (sigma x RMS per element), "
          f"{args.noise_seeds} seeds each:")
    print("| sigma | flipped (wrong argmax) | margin min / median / max | mean KL to full |")
    print("|---|---|---|---|")
    for sigma in args.noise_sigmas:
        ms, kls = [], []
        for sd in range(args.noise_seeds):
            lg = step("full", 1.0, sigma=sigma, seed=sd + 1)
            ms.append(float(lg[r] - lg[w]))
            kls.append(kl(ref, lg))
        print(f"| {sigma:g} | {sum(m < 0 for m in ms)}/{len(ms)} | {min(ms):+.3f} / {float(np.median(ms)):+.3f} / "
              f"{max(ms):+.3f} | {float(np.mean(kls)):.5f} |", flush=True)


def answer_margins(ctx, model, L, qs, p):
    """Per question: the answer teacher-forced under full attention and under Tactic; at
    each answer token, logit(expected) - the best other logit; the smallest over the answer
    (negative: greedy decoding leaves the expected answer there)."""
    print("\n### answer margins per question (expected token - best other token, smallest over the answer)")
    print("| question | key | full: min margin (at token) | Tactic P=%g: min margin (at token) |" % p)
    print("|---|---|---|---|")
    for qi, (question, key) in enumerate(qs):
        ans = model.tokenize(" " + key, add_special=False)
        cells = []
        for sel, pp in (("full", 1.0), ("bounded", p)):
            ctx.truncate(L)
            ctx.set_selection(sel, pp)
            q = model.tokenize(question, add_special=False)
            for t in q[:-1]:
                ctx.eval([t])
            worst = (np.inf, -1)
            for j, t in enumerate([q[-1]] + ans[:-1]):
                ctx.eval([t])
                lg = ctx.logits(-1).astype(np.float64)
                r = lg[ans[j]]
                lg[ans[j]] = -np.inf
                worst = min(worst, (r - lg.max(), j))
            cells.append(f"{worst[0]:+.3f} ({model.piece(ans[worst[1]])!r})")
        print(f"| {qi} | {key} | " + " | ".join(cells) + " |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ctx", type=int, nargs="+", default=[8192, 16384])
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--keys", type=int, default=4)
    ap.add_argument("--question", type=int, default=2)
    ap.add_argument("--wrong", type=int, default=3, help="the question whose key Tactic answered instead")
    ap.add_argument("--p", type=float, default=0.9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--controls", nargs="*", default=["bounded:0.9", "full:1.0", "oracle:0.9", "oracle:0.95",
                                                      "oracle:0.99", "bounded:0.95", "bounded:0.99", "quest:0.9"])
    ap.add_argument("--noise-seeds", type=int, default=10, help="perturbation control: seeds per sigma (0: off)")
    ap.add_argument("--noise-sigmas", type=float, nargs="*", default=[0.0001, 0.0003, 0.001, 0.003, 0.01])
    ap.add_argument("--margins", action="store_true", help="only the answer margins of every question, then stop")
    ap.add_argument("--no-detail", action="store_true", help="skip the teacher-forced per-head tables")
    ap.add_argument("--replay", action="store_true",
                    help="first answer questions 0..question-1 with full, Tactic and Quest as tactic_tasks.py does")
    args = ap.parse_args()
    model = Model()
    rng = random.Random(args.seed)
    for n_ctx in args.ctx:
        doc, qs = multikey_doc(model, n_ctx, args.keys, rng)
    n_ctx = args.ctx[-1]
    ctx = Ctx(model, n_ctx + 128, attention="tactic", selector="bounded", p=args.p, n_threads=args.threads)
    t0 = time.time()
    ctx.prefill_cached(doc, f"multikey_s{args.seed}_{n_ctx}")
    log(f"prefill {len(doc)} tokens {time.time() - t0:.0f} s")
    L = len(doc)
    question, right = qs[args.question]
    wrong = qs[args.wrong][1]
    name = question.split("pass code of ")[1].split("?")[0]
    wname = qs[args.wrong][0].split("pass code of ")[1].split("?")[0]
    span_r, _, _ = line_span(model, doc, name, right)
    span_w, _, _ = line_span(model, doc, wname, wrong)
    print(f"document {L} tokens; question {args.question}: {name} -> {right} (line at {span_r[0]}-{span_r[-1]}); "
          f"competitor {wname} -> {wrong} (line at {span_w[0]}-{span_w[-1]})")
    if args.margins:
        answer_margins(ctx, model, L, qs, args.p)
        return
    if args.replay:
        for qi in range(args.question):
            for sel, p in (("full", 1.0), ("bounded", args.p), ("quest", args.p)):
                answer(ctx, model, L, qs[qi][0], sel, p)
    layers = [il for il in range(18) if (il + 1) % 6 == 0]
    n_head = model.n_head
    full_ans = model.tokenize(" " + right, add_special=False)
    wrong_ans = model.tokenize(" " + wrong, add_special=False)
    pieces = [model.piece(t) for t in full_ans]
    print(f"answer tokens {full_ans} {pieces}; wrong {wrong_ans}")
    runs = {}
    for sel, p in () if args.no_detail else (("full", 1.0), ("bounded", args.p)):
        t0 = time.time()
        runs[sel] = teacher_forced(ctx, model, L, question, full_ans, sel, p, layers, n_head)
        log(f"teacher-forced {sel}: {time.time() - t0:.0f} s")
    sr, sw = np.array(span_r), np.array(span_w)
    for i, t_right in enumerate([] if args.no_detail else full_ans):
        t_wrong = wrong_ans[i] if i < len(wrong_ans) else -1
        lf, lt = runs["full"][i][0], runs["bounded"][i][0]
        print(f"\n### answer step {i}: predicts {model.piece(t_right)!r} (wrong: {model.piece(t_wrong)!r})")
        for nm, lg in (("full", lf), ("tactic", lt)):
            top = int(lg.argmax())
            print(f"- {nm}: logit right {lg[t_right]:.3f} wrong {lg[t_wrong]:.3f} margin {lg[t_right] - lg[t_wrong]:+.3f};"
                  f" argmax {model.piece(top)!r}")
        print("| layer | head | full: mass on asked line | on competing line | Tactic's query: mass on asked line | "
              "on competing | asked-line tokens kept / attended / scored (of n) | their cluster ranks | "
              "asked-line mass not kept | competing kept / attended | Tactic kept mass | tokens kept | n |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for il in layers:
            for h in range(n_head):
                wf, _, _ = runs["full"][i][1][(il, h)]
                wt, ft, ct = runs["bounded"][i][1][(il, h)]
                kept = (ft & 1) > 0
                rk = ",".join(str(x) for x in sorted(set(ct[sr].tolist())))
                print(f"| {il} | {h} | {wf[sr].sum():.4f} | {wf[sw].sum():.4f} | {wt[sr].sum():.4f} | {wt[sw].sum():.4f} | "
                      f"{kept[sr].sum()} / {((ft[sr] & 2) > 0).sum()} / {((ft[sr] & 4) > 0).sum()} (of {len(sr)}) | {rk} | "
                      f"{wt[sr][~kept[sr]].sum():.4f} | {kept[sw].sum()} / {((ft[sw] & 2) > 0).sum()} | {wt[kept].sum():.4f} | {kept.sum()} | {len(wt)} |")
        # per token of the asked line, the head with the largest full weight
        print("\nasked line, per token (max over heads of the full weight; Tactic's flags at that head):")
        for j, t in enumerate(span_r):
            best = max(((il, h) for il in layers for h in range(n_head)), key=lambda k: runs["full"][i][1][k][0][t])
            wf = runs["full"][i][1][best][0][t]
            wt, ft, ct = runs["bounded"][i][1][best]
            print(f"  {t} {model.piece(doc[t])!r}: layer {best[0]} head {best[1]} full w {wf:.4f} tactic-query w {wt[t]:.4f} "
                  f"flags {ft[t]} rank {ct[t]}")
    if args.noise_seeds > 0:
        decisive_controls(ctx, model, L, question, full_ans, wrong_ans, args)
    print("\n### greedy answers under controls")
    print("| selector | P | answer | right |")
    print("|---|---|---|---|")
    for c in args.controls:
        sel, p = c.split(":")
        text, att = answer(ctx, model, L, question, sel, float(p))
        print(f"| {sel} | {p} | `{text.strip()[:16]}` | {'OK' if right in text else 'miss'} |", flush=True)


if __name__ == "__main__":
    main()
