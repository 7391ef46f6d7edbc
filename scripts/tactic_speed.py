"""Decode attention alone, one global layer of gemma3-270m's shape (4 query heads, 1 KV
head, head_dim 256), on synthetic clustered keys (a mixture of 64 Gaussian blobs plus a
sink-like first key; queries near blob directions, scaled so the softmax is peaky). The
time per call is the attention of one layer for one decode token. Real-model attention
times at 8K/16K come from scripts/tactic_eval.py (tactic_get_timings); this adds 32K.

    TACTIC_LIB=build/libtactic.so python scripts/tactic_speed.py --n 8192 16384 32768
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tactic_common import SELECT, check, ffi, lib  # noqa: E402


def data(n, D=256, n_head=4, blobs=64, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(blobs, D)).astype(np.float32)
    ids = rng.integers(0, blobs, size=n)
    K = centres[ids] + 0.6 * rng.normal(size=(n, D)).astype(np.float32)
    K[0] *= 3
    V = rng.normal(size=(n, D)).astype(np.float32)
    q = (centres[rng.integers(0, blobs, size=n_head)] + 0.5 * rng.normal(size=(n_head, D))) * (2.0 / np.sqrt(D))
    return K.astype(np.float16), V.astype(np.float16), q.astype(np.float32)


def bench(K, V, q, selector, p, threads, iters):
    n, D = K.shape
    out = ffi.new("double[3]")
    check(lib.tactic_bench_attention(ffi.cast("uint16_t *", ffi.from_buffer(K)), ffi.cast("uint16_t *", ffi.from_buffer(V)),
                                     ffi.cast("float *", ffi.from_buffer(q)), n, D, q.shape[0], 1, selector, p,
                                     threads, iters, out))
    return list(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[8192, 16384, 32768])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args()
    print("| tokens | kernel | ms/call | tokens attended | speedup vs full (forward's kernel) | clustering s |")
    print("|---|---|---|---|---|---|")
    for n in args.n:
        K, V, q = data(n)
        base = bench(K, V, q, -1, 1.0, args.threads, args.iters)
        rows = [("full (forward's kernel)", base)]
        rows.append(("full (Tactic path)", bench(K, V, q, SELECT["full"], 1.0, args.threads, args.iters)))
        for sel, p in (("bounded", 0.9), ("bounded", 0.95), ("tactic", 0.9), ("quest", 0.9)):
            rows.append((f"{sel} P={p}", bench(K, V, q, SELECT[sel], p, args.threads, args.iters)))
        for name, r in rows:
            print(f"| {n} | {name} | {1000 * r[0]:.2f} | {r[1]:.0f} ({100 * r[1] / n:.1f}%) | {base[0] / r[0]:.2f}x | "
                  f"{r[2]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
