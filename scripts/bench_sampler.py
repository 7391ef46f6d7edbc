"""Time the native sampler on a Gemma-sized vocabulary (262,144 logits) for a few
settings, without a grammar mask and with two masks shaped like a JSON grammar's (inside a
string: nearly every token allowed; between fields: a few hundred). Prints a table:
microseconds per sample.

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
    # Masks: one bit per token. "string": 95% of tokens allowed, scattered; "sparse":
    # 300 allowed tokens (a grammar between fields).
    words = (N_VOCAB + 31) // 32
    dense = np.packbits(rng.random(N_VOCAB) < 0.95, bitorder="little").view(np.uint32)
    sparse_bits = np.zeros(N_VOCAB, dtype=bool)
    sparse_bits[rng.choice(N_VOCAB, 300, replace=False)] = True
    sparse = np.packbits(sparse_bits, bitorder="little").view(np.uint32)
    assert dense.shape[0] == sparse.shape[0] == words
    masks = {"": None, " + string mask": dense, " + sparse mask": sparse}
    print(f"{'setting':70s} {'us/sample':>10s}")
    for name, kw in settings.items():
        for mname, mask in masks.items():
            if mask is not None and "penalty" in name:
                continue
            s = Sampler(seed=1, **kw)
            for t in range(64):
                s.accept(int(rng.integers(N_VOCAB)))
            n = 200
            s.sample(x, mask)
            t0 = time.perf_counter()
            for _ in range(n):
                s.sample(x, mask)
            dt = (time.perf_counter() - t0) / n
            print(f"{name + mname:70s} {dt * 1e6:10.0f}")


if __name__ == "__main__":
    main()
