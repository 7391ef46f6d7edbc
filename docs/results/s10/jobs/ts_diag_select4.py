"""Batch-2 diagnosis of batch 1's one failure (test_group_budget_matches_twin[select4-0.1-shape1]):
the same case, its layout's hash (to compare with the helper machine's numpy), and per
selection (group budget) the clusters that differ from the twin with their twin rank and key."""
import hashlib
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "tests"))
import test_tactic_gpu as T  # noqa: E402

frac = 0.1
rng = np.random.default_rng(29 + int(frac * 1000))
n_head, n_head_kv, D = 4, 1, 256
n_ctx, n, c_begin = 6000, 5321, 4
c_end = n - 97
K, V = T.clustered_cache(rng, n_head_kv, n_ctx, D)
layout = T.kmeans_layout(rng, K, c_begin, c_end, 16)
q = (1.5 * rng.standard_normal((n_head, D))).astype(np.float32)
scale = 1.0 / math.sqrt(D)
order, offsets, ncl, cent = layout
h = hashlib.sha256()
for a in (K, order, offsets, ncl, cent, q):
    h.update(np.ascontiguousarray(a).tobytes())
print("case hash", h.hexdigest()[:16], "C", int(ncl[0]))
C = int(ncl[0])
sizes = np.diff(offsets[0, : C + 1])
c16 = cent[0, :C].astype(np.float16).astype(np.float64)
key = np.full(C, -np.inf)
for hh in range(n_head):
    s = scale * (c16 @ q[hh].astype(np.float64))
    key = np.maximum(key, s - (s.max() + np.log((sizes * np.exp(s - s.max())).sum())))
ordc = sorted(range(C), key=lambda c: (-key[c], c))
rank = {c: r for r, c in enumerate(ordc)}
sets, ties = T.twin_group_select(q, layout, c_begin, c_end, n, frac, scale)
of = {}
for c in range(C):
    for t in order[0, offsets[0, c] : offsets[0, c + 1]]:
        of[int(t)] = c
assert T.lib.tactic_cuda_set_option(b"tactic_group_budget", 1) == 0
for score, select in [(4, 4), (4, 4), (4, 4), (4, 3), (2, 1), (4, 9)]:
    assert T.lib.tactic_cuda_set_option(b"tactic_score", score) == 0
    assert T.lib.tactic_cuda_set_option(b"tactic_select", select) == 0
    out, lists = T.gpu_step(q, K, V, n, c_begin, c_end, layout, frac, scale)
    diff = set(lists[0].tolist()) ^ set(sets[0])
    cl = sorted({of[t] for t in diff if t in of})
    print(f"score {score} select {select}: {len(lists[0])} rows (twin {len(sets[0])}), clusters differing "
          + str([(c, rank[c], round(float(key[c]), 5), int(sizes[c]), bool(ties[0][c])) for c in cl]))
