"""Prints the attn_kernel (other than 8) with the least summed time at 32K-128K on the 8B
shape in gpu_bench.py --attention-only JSONs (the job's end-to-end candidate)."""
import json
import sys

tot = {}
for path in sys.argv[1:]:
    try:
        rows = json.load(open(path))["attention_kernels"]
    except (OSError, ValueError, KeyError):
        continue
    for r in rows:
        if r["model"] != "llama3-8b-like" or r["n_ctx"] < 32768:
            continue
        for key, v in r["kernels"].items():
            if key[1:].isdigit():
                tot.setdefault(key, {})[r["n_ctx"]] = v["us"]
full = {k: sum(v.values()) for k, v in tot.items() if len(v) == 3}  # (all three contexts timed)
best = min((k for k in full if k != "k8"), key=lambda k: full[k], default="k8")
print(best[1:])
