"""Decode speed after a long context: pytactic with full attention, pytactic with Tactic
at a forced fraction, and llama-cpp-python, on the same file and the same tokens.

    python scripts/bench_decode_depth.py --model M.gguf --ctx 16384 --fraction 0.065 [--gen 16]

pytactic prefills the context once (full attention), then decodes --gen tokens with full
attention; a second context with Tactic (attention=tactic, tactic_force_fraction=F:
every query head of a global layer keeps exactly ceil(F n) cached tokens) takes the same
K/V through the state blob (Tactic clusters the restored keys), decodes one untimed
step (the first clustering) and then --gen timed ones. llama-cpp-python (0.3.36, without
its extra buffer types: see bench_core.py) prefills and decodes the same tokens.
Decode = tokens/s over the timed steps, each step feeding the last prompt token again
(as bench_core.py), so every step attends the whole context.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

from bench_core import (bench_llama_cpp, default_model, pytactic_restore, pytactic_state,  # noqa: E402
                        timed_steps, token_stream)


def bench_pytactic(model, n_ctx, n_threads, n_gen, fraction):
    from pytactic._native import check, ffi, lib
    from pytactic.lowlevel import NativeSession

    size = n_ctx + 2 * n_gen + 16
    out = {}
    with NativeSession(model, n_ctx=size, n_threads=n_threads, attention=1) as full:
        prompt = token_stream(n_ctx, full.n_vocab)
        t0 = time.perf_counter()
        full.eval(prompt)
        out["prefill_tok_s"] = n_ctx / (time.perf_counter() - t0)
        blob = pytactic_state(full)
        t = ffi.new("double[6]")
        check(lib.tactic_get_timings(full.ctx, t, 6, 1))  # reset: the decode steps' own share below
        out["full_decode_tok_s"] = timed_steps(full.eval, prompt[-1], n_gen)
        check(lib.tactic_get_timings(full.ctx, t, 6, 0))
        out["full_decode_ms"], out["full_decode_attn_ms"] = 1000 * t[2] / n_gen, 1000 * t[3] / n_gen
    with NativeSession(model, n_ctx=size, n_threads=n_threads, attention=2, tactic_force_fraction=fraction) as tac:
        pytactic_restore(tac, blob)
        t0 = time.perf_counter()
        tac.eval([prompt[-1]])  # the first step clusters the restored keys
        out["tactic_first_step_s"] = time.perf_counter() - t0
        out["tactic_decode_tok_s"] = timed_steps(tac.eval, prompt[-1], n_gen)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, nargs="+", default=[16384])
    ap.add_argument("--gen", type=int, default=16)
    ap.add_argument("--fraction", type=float, required=True, help="Tactic's forced share of the cached tokens")
    ap.add_argument("--only", choices=["pytactic", "llama"], default=None,
                    help="one side only (a 32K context takes minutes to fill on each side)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    model = a.model or default_model()
    from pytactic._native import ffi, lib

    print(f"model {model}\nthreads {a.threads}, fraction {a.fraction}, gen {a.gen}, "
          f"build {ffi.string(lib.tactic_build_info()).decode()}, load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"{'ctx':>6} | {'pytactic pp':>11} {'full tg':>8} {'tactic tg':>9} {'1st step s':>10} | "
          f"{'llama pp':>8} {'llama tg':>8} | {'full/llama':>10} {'tactic/llama':>12} {'tactic/full':>11}", flush=True)
    rows = []
    for n in a.ctx:
        nan = float("nan")
        ours = (bench_pytactic(model, n, a.threads, a.gen, a.fraction) if a.only != "llama" else
                {"prefill_tok_s": nan, "full_decode_tok_s": nan, "tactic_decode_tok_s": nan,
                 "tactic_first_step_s": nan})
        if a.only != "llama":  # printed at once: a llama.cpp side cut short by a timeout keeps these
            print(f"pytactic {n}: {json.dumps(ours)}", flush=True)
        other = None if a.only == "pytactic" else bench_llama_cpp(model, n, a.threads, a.gen, (True,))
        if other:
            print(f"llama-cpp-python {n}: prefill {other[0]:.1f} tok/s, decode {other[1]:.2f} tok/s", flush=True)
        row = {"ctx": n, **ours, "llama_cpp_python": other, "load_after": os.getloadavg()[0]}
        rows.append(row)
        lp, lt = other if other else (nan, nan)
        print(f"{n:6d} | {ours['prefill_tok_s']:11.1f} {ours['full_decode_tok_s']:8.2f} "
              f"{ours['tactic_decode_tok_s']:9.2f} {ours['tactic_first_step_s']:10.1f} | {lp:8.1f} {lt:8.2f} | "
              f"{ours['full_decode_tok_s'] / lt:10.2f} {ours['tactic_decode_tok_s'] / lt:12.2f} "
              f"{ours['tactic_decode_tok_s'] / ours['full_decode_tok_s']:11.2f}", flush=True)
    if a.json:
        meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "threads": a.threads,
                "fraction": a.fraction, "gen": a.gen, "llama_fa": "on",
                "commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                         capture_output=True, text=True).stdout.strip()}
        Path(a.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
