"""Prints the attn_kernel (other than 8) with the least summed time at 32K-128K on the 8B
shape in a gpu_bench.py --attention-only JSON (the job's end-to-end candidate)."""
import json
import sys

rows = json.load(open(sys.argv[1]))["attention_kernels"]
tot = {}
for r in rows:
    if r["model"] != "llama3-8b-like" or r["n_ctx"] < 32768:
        continue
    for key, v in r["kernels"].items():
        if key[1:].isdigit():
            tot[key] = tot.get(key, 0.0) + v["us"]
best = min((k for k in tot if k != "k8"), key=lambda k: tot[k], default="k8")
print(best[1:])
