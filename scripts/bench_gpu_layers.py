"""Decode speed of a split context (n_gpu_layers, as llama.cpp's -ngl): the first N
layers on the GPU, the rest on the CPU. Prints one line per N: load time, a short
prefill, and decode tok/s over a few tokens (CPU layers are slow: keep --tokens small).

    python scripts/bench_gpu_layers.py MODEL.gguf --ngl 32 16 --tokens 32 8 [--prompt 64]

--tokens gives the decode count for each --ngl (the last one repeats).
"""

import argparse
import time

import numpy as np

from pytactic._native import lib
from pytactic.lowlevel import NativeSession

CUDA = 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--ngl", type=int, nargs="+", default=[-1])
    ap.add_argument("--tokens", type=int, nargs="+", default=[32])
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    print(f"{'n_gpu_layers':>12} {'load s':>7} {'prefill tok/s':>14} {'decode tok/s':>13} {'tokens':>6}")
    for i, ngl in enumerate(a.ngl):
        n_tok = a.tokens[min(i, len(a.tokens) - 1)]
        t0 = time.perf_counter()
        with NativeSession(a.model, n_ctx=a.prompt + n_tok + 8, n_threads=a.threads, attention=1, device=CUDA,
                           n_gpu_layers=ngl) as s:
            t_load = time.perf_counter() - t0
            assert lib.tactic_context_device(s.ctx) == CUDA
            rng = np.random.default_rng(0)
            ids = [1] + rng.integers(3, min(s.n_vocab, 32000), a.prompt - 1).tolist()
            t0 = time.perf_counter()
            logits = s.eval(ids)
            t_pre = time.perf_counter() - t0
            tok = int(np.argmax(logits[-1]))
            s.eval([tok])  # the first decode step captures the graph
            t0 = time.perf_counter()
            for _ in range(n_tok):
                tok = int(np.argmax(s.eval([tok])[-1]))
            t_dec = time.perf_counter() - t0
        print(f"{ngl:>12} {t_load:>7.1f} {a.prompt / t_pre:>14.0f} {n_tok / t_dec:>13.2f} {n_tok:>6}", flush=True)


if __name__ == "__main__":
    main()
