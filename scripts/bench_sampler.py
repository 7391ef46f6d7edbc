"""Time the native sampler on a Gemma-sized vocabulary (262,144 logits) for a few
settings. Prints a table: microseconds per sample.

    TACTIC_LIB=build/libtactic.so python scripts/bench_sampler.py
"""

import time

import numpy as np

from pytactic.sampling import Sampler

N_VOCAB = 262144


def main():
    rng = np.random.default_rng(0)
    # LM-like logits: a broad bulk and a few tokens well above it
    x = (rng.normal(size=N_VOCAB) * 2.5).astype(np.float32)
    x[rng.choice(N_VOCAB, 20, replace=False)] += 12
    settings = {
        "greedy": dict(temperature=0),
        "greedy + repeat_penalty 1.1 (64 accepted)": dict(temperature=0, repeat_penalty=1.1),
        "llama.cpp defaults (top_k 40, top_p .95, min_p .05)": dict(),
        "top_p 0.9 only": dict(top_k=0, top_p=0.9, min_p=0.0),
        "min_p 0.05 only": dict(top_k=0, top_p=1.0, min_p=0.05),
        "temperature only (no truncation)": dict(top_k=0, top_p=1.0, min_p=0.0),
    }
    print(f"{'setting':55s} {'us/sample':>10s}")
    for name, kw in settings.items():
        s = Sampler(seed=1, **kw)
        for t in range(64):
            s.accept(int(rng.integers(N_VOCAB)))
        n = 200
        s.sample(x)
        t0 = time.perf_counter()
        for _ in range(n):
            s.sample(x)
        dt = (time.perf_counter() - t0) / n
        print(f"{name:55s} {dt * 1e6:10.0f}")


if __name__ == "__main__":
    main()
