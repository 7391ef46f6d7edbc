"""Matmul throughput on the shapes of Gemma 3 270M Q4_K_M, scalar vs AVX2 vs AVX-512,
through the native benchmark hook (tactic_bench_matmul: the forward pass's own matmul).

    TACTIC_LIB=build/libtactic.so python scripts/bench_matmul.py [--threads 2] [--quick]

--threads 1 gives the throughput per core. --all-types adds every type on a
1024 x 1024 matrix (the per-kernel table).

Decode (1 token) is memory-bound: read GB/s of weights. Prefill is compute-bound:
GMAC/s. The last table adds the shapes up into a matmul-only tokens/s for the model
(18 layers; the tied 262144 x 640 Q8_0 output projection once per decoded token and,
for prefill, once per prompt: only the last position needs logits).
"""

import argparse
import time

import numpy as np

from pytactic._native import check, ffi, lib

TYPES = {"F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20), "Q5_0": (6, 32, 22),
         "Q5_1": (7, 32, 24), "Q8_0": (8, 32, 34), "Q4_K": (12, 256, 144), "Q5_K": (13, 256, 176),
         "Q6_K": (14, 256, 210), "BF16": (30, 1, 2)}
F16_FIELDS = {"Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0], "Q4_K": [0, 2],
              "Q5_K": [0, 2], "Q6_K": [208]}

# Gemma 3 270M Q4_K_M: (tensor, type, rows = outputs, cols = inputs) per layer.
LAYER = [("attn_q", "Q5_0", 1024, 640), ("attn_k", "Q5_0", 256, 640), ("attn_v", "Q8_0", 256, 640),
         ("attn_output", "Q4_K", 640, 1024), ("ffn_gate", "Q5_0", 2048, 640), ("ffn_up", "Q5_0", 2048, 640),
         ("ffn_down", "Q6_K", 640, 2048)]
N_LAYERS = 18
OUTPUT = ("output (tied)", "Q8_0", 262144, 640)


def random_matrix(name, rows, cols, rng):
    tid, bs, ts = TYPES[name]
    if bs == 1:
        if name == "F32":
            return rng.standard_normal((rows, cols), dtype=np.float32).view(np.uint8)
        return rng.standard_normal((rows, cols), dtype=np.float32).astype(np.float16).view(np.uint8)
    nb = rows * cols // bs
    blocks = rng.integers(0, 256, size=(nb, ts), dtype=np.uint8)
    for off in F16_FIELDS[name]:
        blocks[:, off:off + 2] = rng.uniform(-0.05, 0.05, nb).astype(np.float16).view(np.uint8).reshape(nb, 2)
    return blocks.reshape(rows, -1)


def bench(name, w, cols, n_tokens, impl, threads, min_time=0.3):
    rows = w.shape[0]
    x = np.random.default_rng(0).standard_normal((n_tokens, cols), dtype=np.float32)
    y = np.empty((n_tokens, rows), dtype=np.float32)
    sec = ffi.new("double *")

    def run(iters):
        check(lib.tactic_bench_matmul(TYPES[name][0], ffi.from_buffer(w), w.nbytes, rows, cols,
                                      ffi.cast("float *", ffi.from_buffer(x)), n_tokens,
                                      ffi.cast("float *", ffi.from_buffer(y)), impl, threads, iters, sec))
        return sec[0]

    run(1)  # warm up (page in, thread start)
    t = run(1)
    iters = max(1, min(200, int(min_time / max(t, 1e-6))))
    if CPU_TIME:
        c0 = time.process_time()
        run(iters)
        return (time.process_time() - c0) / iters / threads
    return run(iters)


CPU_TIME = False  # --cpu-time: process CPU time / threads instead of wall time


IMPL = {1: "scalar", 2: "avx2", 3: "avx512"}


def impl_available(impl):
    w = np.zeros(34, dtype=np.uint8)
    x = np.zeros(32, dtype=np.float32)
    return lib.tactic_vec_dot(8, ffi.from_buffer(w), 34, ffi.cast("float *", ffi.from_buffer(x)), 32, impl,
                              ffi.new("float *")) == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prefill", type=int, default=128, help="tokens per prefill matmul")
    ap.add_argument("--quick", action="store_true", help="SIMD only, fewer shapes")
    ap.add_argument("--all-types", action="store_true", help="also every type on a 1024 x 1024 matrix")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time by process CPU time / threads (steadier on a loaded machine; "
                         "with several threads it includes the workers' spinning)")
    args = ap.parse_args()
    global CPU_TIME
    CPU_TIME = args.cpu_time
    rng = np.random.default_rng(1)
    impls = [i for i in (1, 2, 3) if impl_available(i)]
    if args.quick and len(impls) > 1:
        impls = impls[1:]
    print(f"library: {ffi.string(lib.tactic_build_info()).decode()}, threads {args.threads}")
    print(f"{'shape':<16}{'type':<6}{'rows x cols':>15}{'tokens':>8}{'impl':>8}{'ms':>10}{'GB/s':>8}{'GMAC/s':>9}")

    timings = {}
    shapes = LAYER + [OUTPUT]
    if args.all_types:
        shapes = shapes + [(f"{t}", t, 1024, 1024) for t in TYPES]
    for label, name, rows, cols in shapes:
        w = random_matrix(name, rows, cols, rng)
        for n_tokens in (1, args.prefill):
            if label == OUTPUT[0] and n_tokens > 1:
                continue
            for impl in impls:
                if impl == 1 and n_tokens > 1 and (args.quick or rows * cols > 4e6):
                    continue  # the scalar path is slow: one sample of it is enough
                t = bench(name, w, cols, n_tokens, impl, args.threads)
                timings[(label, n_tokens, impl)] = t
                gbs = f"{w.nbytes / t / 1e9:8.2f}" if n_tokens == 1 else f"{'-':>8}"
                gmacs = rows * cols * n_tokens / t / 1e9
                print(f"{label:<16}{name:<6}{rows:>7} x {cols:<6}{n_tokens:>8}{IMPL[impl]:>8}"
                      f"{t * 1e3:>10.3f}{gbs}{gmacs:>9.2f}")

    print("\nGemma 3 270M, matmul time only (18 layers + tied output projection):")
    for impl in impls:
        dec = N_LAYERS * sum(timings[(l[0], 1, impl)] for l in LAYER) + timings[(OUTPUT[0], 1, impl)]
        print(f"  {IMPL[impl]:>6} decode: {dec * 1e3:7.2f} ms/token = {1 / dec:7.1f} tok/s"
              f"  (output projection {timings[(OUTPUT[0], 1, impl)] * 1e3:.2f} ms)")
        if all((l[0], args.prefill, impl) in timings for l in LAYER):
            pre = N_LAYERS * sum(timings[(l[0], args.prefill, impl)] for l in LAYER)
            pre += timings[(OUTPUT[0], 1, impl)]
            print(f"  {IMPL[impl]:>6} prefill ({args.prefill} tokens): {pre * 1e3:7.1f} ms "
                  f"= {args.prefill / pre:7.1f} tok/s")


if __name__ == "__main__":
    main()
