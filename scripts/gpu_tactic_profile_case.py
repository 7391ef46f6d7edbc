"""One Tactic decode step per option setting on a synthetic 8B-shape layer (32 query heads,
8 KV heads, head_dim 128), for a profiler (ncu) to time its kernels in isolation:
  ncu -k regex:"cscore|attend_stream" python scripts/gpu_tactic_profile_case.py --n 32768 \\
      --settings "tactic_score=3,tactic_attend=1;tactic_score=4,tactic_attend=2"
Each setting runs the harness's step graph twice (tests/test_tactic_gpu.py's gpu_step); the
layout is the tests' random one (clusters of 1-31 tokens in random order, no K-means), so
the selected rows are runs of the same lengths as the real pages'."""

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import test_tactic_gpu as T  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=32768)
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--settings", default="tactic_score=3,tactic_attend=1")
    args = ap.parse_args()
    rng = np.random.default_rng(3)
    n, D = args.n, 128
    K, V = T.clustered_cache(rng, 8, n, D)
    layout = T.random_layout(rng, K, 4, n - 200, 16)
    q = (1.5 * rng.standard_normal((32, D))).astype(np.float32)
    for setting in args.settings.split(";"):
        for kv in setting.split(","):
            name, value = kv.split("=")
            assert T.lib.tactic_cuda_set_option(name.encode(), int(value)) == 0, kv
        out, lists = T.gpu_step(q, K, V, n, 4, n - 200, layout, args.fraction, 1.0 / math.sqrt(D))
        print(f"{setting}: rows per KV head {[len(x) for x in lists]}, out finite {bool(np.isfinite(out).all())}")


if __name__ == "__main__":
    main()
