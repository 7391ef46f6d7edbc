"""What limits the CPU decode matmuls: one token through Gemma 3 270M's matrices, read
from memory (matrices larger than the caches), against a plain streaming read of a
buffer of the same size, under the research knobs of tactic_cpu_set_option (software
prefetch distance and hint, huge pages for the repacked copy).

    TACTIC_LIB=build/libtactic.so python scripts/bench_decode_matvec.py [--threads 2] [--rounds 2]

Each variant is timed in turn, and the whole list `--rounds` times (alternating, so that
a change of the machine's state shows as a spread rather than as a difference).
"""

import argparse

import numpy as np

from bench_matmul import TYPES, random_matrix
from pytactic._native import check, ffi, lib

# (label, type, rows, cols): the tied output projection, and each layer type stacked over
# the 18 layers (one matrix of 18x the rows: streamed from memory as decode streams them).
SHAPES = [("output (tied)", "Q8_0", 262144, 640), ("ffn_gate x18", "Q5_0", 18 * 2048, 640),
          ("attn_output x18", "Q4_K", 18 * 640, 1024), ("ffn_down x18", "Q6_K", 18 * 640, 2048)]


def set_opt(name, value):
    check(lib.tactic_cpu_set_option(name.encode(), value))


def matvec_ms(name, w, cols, threads, iters):
    rows = w.shape[0]
    x = np.random.default_rng(0).standard_normal((1, cols), dtype=np.float32)
    y = np.empty((1, rows), dtype=np.float32)
    sec = ffi.new("double *")
    check(lib.tactic_bench_matmul(TYPES[name][0], ffi.from_buffer(w), w.nbytes, rows, cols,
                                  ffi.cast("float *", ffi.from_buffer(x)), 1,
                                  ffi.cast("float *", ffi.from_buffer(y)), 3, threads, iters, sec))
    return sec[0] * 1e3


def stream_ms(nbytes, threads, iters):
    sec = ffi.new("double *")
    check(lib.tactic_bench_stream_read(nbytes, threads, iters, sec))
    return sec[0] * 1e3


VARIANTS = [  # (label, prefetch bytes, hint, huge pages)
    ("pf 12K T0, 4K pages", 12288, 0, 0), ("pf 12K T0, huge", 12288, 0, 1), ("no pf, 4K pages", 0, 0, 0),
    ("no pf, huge", 0, 0, 1), ("pf 4K T0, huge", 4096, 0, 1), ("pf 24K T0, huge", 24576, 0, 1),
    ("pf 12K T1, huge", 12288, 1, 1), ("pf 24K T1, huge", 24576, 1, 1), ("pf 12K NTA, huge", 12288, 3, 1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--shapes", default="all", help="'output' for the output projection only")
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    shapes = SHAPES[:1] if args.shapes == "output" else SHAPES
    mats = {label: random_matrix(name, rows, cols, rng) for label, name, rows, cols in shapes}
    print(f"library: {ffi.string(lib.tactic_build_info()).decode()}, threads {args.threads}, one token")
    res = {}
    for rnd in range(args.rounds):
        for hp in (0, 1):
            set_opt("huge_pages", hp)
            for t in sorted({1, args.threads}):
                nb = mats[shapes[0][0]].nbytes
                res.setdefault(("stream read", f"{'huge' if hp else '4K pages'}, {t} thr"), []).append(
                    (stream_ms(nb, t, args.iters), nb))
        for vlabel, pf, hint, hp in VARIANTS:
            set_opt("decode_prefetch_bytes", pf)
            set_opt("decode_prefetch_hint", hint)
            set_opt("huge_pages", hp)
            for label, name, rows, cols in shapes:
                if name not in ("Q8_0", "Q5_0") and hp == 1 and pf == 12288 and hint == 0:
                    continue  # K-quants are not copied: huge pages change nothing for them
                w = mats[label]
                res.setdefault((label, vlabel), []).append((matvec_ms(name, w, cols, args.threads, args.iters),
                                                            w.nbytes))
    set_opt("decode_prefetch_bytes", 12288)
    set_opt("decode_prefetch_hint", 0)
    set_opt("huge_pages", 1)
    print(f"{'matrix':<18}{'variant':<24}{'MB':>8}{'ms (each round)':>26}{'best GB/s':>11}")
    for (label, vlabel), runs in res.items():
        ms = [m for m, _ in runs]
        nb = runs[0][1]
        print(f"{label:<18}{vlabel:<24}{nb / 1e6:8.1f}{' '.join(f'{m:7.2f}' for m in ms):>26}"
              f"{nb / min(ms) / 1e6:11.2f}")


if __name__ == "__main__":
    main()
