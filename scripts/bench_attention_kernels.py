"""CPU decode attention alone: the AVX-512 block kernel's two lane layouts, and the
forward pass's decode attention of one Gemma 3 270M global layer.

1. The block kernel over n keys on one thread (tactic_bench_attention_block; thread CPU
   time), query rows in the lanes vs keys in the lanes (the layout a decode token takes,
   at most 8 rows), per query-row count: ns per key. The keys-in-lanes threshold in
   attention_avx512.cpp (kFewRows) comes from this table.
2. The forward pass's decode attention (tactic_bench_attention, selector -1: attention_split
   over 1024-key chunks) of 4 query heads / 1 KV head of 256 at --ctx, on --threads
   threads: ms per layer (Gemma 3 270M decode runs 3 such global layers a step).

    TACTIC_LIB=build/libtactic.so python scripts/bench_attention_kernels.py [--ctx 16384] [--threads 2]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tactic_common import check, ffi, lib  # noqa: E402


def ptr(a, t):
    return ffi.cast(t, ffi.from_buffer(a))


def kv(n, D, seed=0):
    rng = np.random.default_rng(seed)
    K = (rng.standard_normal((n, D)) * 0.5).astype(np.float16).view(np.uint16)
    V = rng.standard_normal((n, D)).astype(np.float16).view(np.uint16)
    return K, V


def block_seconds(K, V, q, layout, n_iter):
    n, D = K.shape
    nt, group, _ = q.shape
    R = nt * group
    lo, hi = np.zeros(nt, dtype=np.int32), np.full(nt, n, dtype=np.int32)
    m, l, acc = np.empty(R, np.float32), np.empty(R, np.float32), np.empty((R, D), np.float32)
    sec = ffi.new("double *")
    check(lib.tactic_bench_attention_block(ptr(K, "uint16_t *"), ptr(V, "uint16_t *"), n, ptr(q, "float *"), nt,
                                           group, D, ptr(lo, "int32_t *"), ptr(hi, "int32_t *"), 0, n, layout,
                                           n_iter, ptr(m, "float *"), ptr(l, "float *"), ptr(acc, "float *"), sec))
    return sec[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ctx", type=int, default=16384, help="keys of the forward-pass table")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keys", type=int, nargs="+", default=[1024, 65536],
                    help="keys of the block-kernel table (1024: cache-resident; 65536: from memory)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions (minimum taken)")
    a = ap.parse_args()
    print(f"build {ffi.string(lib.tactic_build_info()).decode()}")

    try:
        lib.tactic_bench_attention_block
        have_block = True
    except AttributeError:  # an older library: the forward pass's table only
        have_block = False
    if have_block:
        print("\nblock kernel, one thread: ns per key (min of reps)")
        print("| keys | D | rows (group x tokens) | rows in lanes | keys in lanes | speedup |")
        print("|---|---|---|---|---|---|")
    else:
        print("\n(this library has no block-kernel hook)")
    rng = np.random.default_rng(1)
    for n in a.keys if have_block else []:
        for D, shapes in ((256, ((4, 1), (1, 1), (4, 2), (4, 3))), (64, ((7, 1), (2, 4)))):
            K, V = kv(n, D)
            for group, nt in shapes:
                q = (rng.standard_normal((nt, group, D)) * 2 / np.sqrt(D)).astype(np.float32)
                iters = max(2, 200000 // n)
                ns = []
                for layout in (1, 2):
                    if layout == 2 and group * nt > 8:
                        ns.append(float("nan"))
                        continue
                    ns.append(1e9 * min(block_seconds(K, V, q, layout, iters) for _ in range(a.reps)) / n)
                speedup = f"{ns[0] / ns[1]:.2f}x" if ns[1] == ns[1] else "-"
                print(f"| {n} | {D} | {group * nt} ({group} x {nt}) | {ns[0]:.1f} | {ns[1]:.1f} | {speedup} |",
                      flush=True)

    print(f"\nforward pass's decode attention, 4 query heads / 1 KV head of 256, {a.ctx} keys, "
          f"{a.threads} threads: ms per layer (median of 20 calls; min of reps)")
    K, V = kv(a.ctx, 256)
    q = (rng.standard_normal((4, 256)) * 2 / np.sqrt(256)).astype(np.float32)
    out = ffi.new("double[3]")
    best = float("inf")
    for _ in range(a.reps):
        check(lib.tactic_bench_attention(ptr(K, "uint16_t *"), ptr(V, "uint16_t *"), ptr(q, "float *"), a.ctx, 256,
                                         4, 1, -1, 1.0, a.threads, 20, out))
        best = min(best, out[0])
    print(f"| {a.ctx} | {a.threads} | {1000 * best:.3f} ms | x3 layers: {3000 * best:.2f} ms a step |")


if __name__ == "__main__":
    main()
