"""End-to-end speed of each CPU kernel path (TACTIC_KERNELS=avx2 vs the default,
AVX-512 where the CPU has it) on one thread, timed by process CPU time: on a machine
shared with other jobs this counts the work each path does, not the time it waited for
a core (it still includes the slowdown of sharing caches and hyper-threads).

    TACTIC_LIB=build/libtactic.so python scripts/bench_kernel_paths.py [--model PATH] [--ctx 512 4096] [--gen 16]

Each path runs in its own process (the kernel choice is made once per process).
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from bench_core import default_model, token_stream
from pytactic.lowlevel import NativeSession
from pytactic._native import ffi, lib
model, n, n_gen = sys.argv[2] or default_model(), int(sys.argv[3]), int(sys.argv[4])
with NativeSession(model, n_ctx=n + n_gen + 8, n_threads=1, attention=1) as s:
    p = token_stream(n, s.n_vocab)
    c0 = time.process_time(); s.eval(p); tp = time.process_time() - c0
    c0 = time.process_time()
    for _ in range(n_gen): s.eval(p[-1:])
    td = time.process_time() - c0
print(json.dumps({"build": ffi.string(lib.tactic_build_info()).decode(), "prefill": n / tp, "decode": n_gen / td}))
"""


def run(kernels, model, n, n_gen):
    env = dict(os.environ)
    env.pop("TACTIC_KERNELS", None)
    if kernels != "best":
        env["TACTIC_KERNELS"] = kernels
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", CHILD, str(REPO / "scripts"), model or "", str(n), str(n_gen)],
                       capture_output=True, text=True, env=env, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--ctx", type=int, nargs="+", default=[512, 4096])
    ap.add_argument("--gen", type=int, default=16)
    args = ap.parse_args()
    print(f"{'ctx':>6} | {'path':>14} | {'prefill tok/s/core':>18} | {'decode tok/s/core':>17}")
    for n in args.ctx:
        base = None
        for k in ("avx2", "best"):
            r = run(k, args.model, n, args.gen)
            path = r["build"].split()[0].replace("simd=", "")
            rel = f" ({r['prefill'] / base['prefill']:.2f}x, {r['decode'] / base['decode']:.2f}x)" if base else ""
            print(f"{n:6d} | {path:>14} | {r['prefill']:18.1f} | {r['decode']:17.1f}{rel}", flush=True)
            base = base or r


if __name__ == "__main__":
    main()
