"""Decode steps at one depth under several settings of the CPU research knobs
(tactic_cpu_set_option), alternating in one process over the same K/V, so that the
machine's drift shows as spread, not as a difference between settings.

    TACTIC_LIB=build/libtactic.so python scripts/bench_decode_ab.py --ctx 16384 [--steps 32] [--rounds 4]

Prefills --ctx tokens once (full attention, 2 threads), then for each round runs
--steps decode steps (each feeding the last prompt token again, as
bench_decode_depth.py) under each variant: ms a step (wall) and the global layers'
attention ms a step (tactic_get_timings).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

from bench_core import default_model, token_stream  # noqa: E402

VARIANTS = {  # name: knob settings
    "L1 prefetch (old)": {"decode_prefetch_hint": 0, "attn_prefetch_l2": 0},
    "matmul L2": {"decode_prefetch_hint": 1, "attn_prefetch_l2": 0},
    "matmul + attn L2": {"decode_prefetch_hint": 1, "attn_prefetch_l2": 1},
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--ctx", type=int, default=16384)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    from pytactic._native import check, ffi, lib
    from pytactic.lowlevel import NativeSession

    model = a.model or default_model()
    res = {v: [] for v in VARIANTS}
    with NativeSession(model, n_ctx=a.ctx + a.steps * a.rounds * len(VARIANTS) + 16, n_threads=a.threads,
                       attention=1) as s:
        prompt = token_stream(a.ctx, s.n_vocab)
        t0 = time.perf_counter()
        s.eval(prompt)
        print(f"model {model}, ctx {a.ctx}, prefill {a.ctx / (time.perf_counter() - t0):.1f} tok/s, "
              f"{a.threads} threads, {a.steps} steps x {a.rounds} rounds a variant", flush=True)
        t = ffi.new("double[6]")
        for _ in range(a.rounds):
            for name, knobs in VARIANTS.items():
                for k, v in knobs.items():
                    check(lib.tactic_cpu_set_option(k.encode(), v))
                s.eval([prompt[-1]])  # one untimed step under the new setting
                check(lib.tactic_get_timings(s.ctx, t, 6, 1))
                t0 = time.perf_counter()
                for _ in range(a.steps):
                    s.eval([prompt[-1]])
                wall = (time.perf_counter() - t0) / a.steps * 1e3
                check(lib.tactic_get_timings(s.ctx, t, 6, 1))
                res[name].append((wall, t[3] / a.steps * 1e3))
    print(f"{'variant':<22}{'ms a step (each round)':>40}{'median':>8}{'attn ms (each round)':>36}{'median':>8}")
    for name, runs in res.items():
        w = [r[0] for r in runs]
        at = [r[1] for r in runs]
        print(f"{name:<22}{' '.join(f'{x:6.2f}' for x in w):>40}{statistics.median(w):8.2f}"
              f"{' '.join(f'{x:6.2f}' for x in at):>36}{statistics.median(at):8.2f}")


if __name__ == "__main__":
    main()
