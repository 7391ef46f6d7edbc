#!/usr/bin/env python3
"""Where a CUDA decode step's time goes: per kernel of one step, for several settings
of the CUDA options, on one GGUF (e.g. make_random_gguf.py's 8B-shape Q4_K_M file).

For each configuration a context is made on the loaded model (its own copy of the
weights on the GPU), `--depth` tokens are prefilled, a few warm-up steps capture the
decode graph, and then `--steps` decode steps are timed two ways:
  * wall: each step evaluated and waited for (what gpu_e2e.py's tg figure measures,
    less the argmax), median ms per step;
  * kernels: the same steps under torch.profiler (CUPTI sees the library's kernels,
    graph nodes included), summed by kernel name and divided by the step count; the
    sum of all kernels against the wall time is what the step spends between kernels.
torch is only needed for the per-kernel table; without it the wall times still print.

  TACTIC_LIB=build/libtactic.so python3 scripts/gpu_decode_breakdown.py --model l8b.gguf \\
      --config old:matvec_q8_kernel=3,decode_fuse=0 --config new:
"""

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytactic._native import check, ffi, lib  # noqa: E402
from pytactic.lowlevel import load_model, model_info, new_context  # noqa: E402

CUDA = 2
DEFAULTS = {"matvec_q8_kernel": 5, "decode_fuse": 2, "matvec_rows": 0, "matvec_wait": 1, "norm_fuse": 1,
            "pdl": 1, "tactic_group_budget": 1, "tactic_mma": 1, "tactic_select": 9, "tactic_score": 5,
            "tactic_attend": 2, "attn_kernel": 32, "merge_q8": 1, "attn_splits": 0}


def parse_config(text):
    name, _, opts = text.partition(":")
    out = {}
    for kv in filter(None, opts.split(",")):
        k, _, v = kv.partition("=")
        out[k] = int(v)
    return name, out


def set_options(opts):
    for k, v in {**DEFAULTS, **opts}.items():
        check(lib.tactic_cuda_set_option(k.encode(), v))


def short(name):
    """A kernel's name without its argument list and namespaces, templates kept."""
    base = name.split("(")[0]
    for p in ("void ", "tactic::cuda::", "(anonymous namespace)::", "<unnamed>::", "tactic::"):
        base = base.replace(p, "")
    return base.strip()


def run_config(model, n_vocab, name, opts, depth, steps, n_ctx, profile, fraction=0.0):
    set_options(opts)
    attn = dict(attention=2, tactic_force_fraction=fraction) if fraction > 0 else dict(attention=1)
    ctx = new_context(model, owned=False, device=CUDA, n_ctx=n_ctx, **attn)  # freed below
    rng = np.random.default_rng(0)
    ids = [1] + rng.integers(3, n_vocab, depth - 1).tolist()
    arr = ffi.new("int32_t[]", ids)
    check(lib.tactic_eval(ctx, arr, len(ids), 0))
    tok = ffi.new("int32_t[1]", [5])

    def step():
        check(lib.tactic_eval(ctx, tok, 1, 0))

    for _ in range(4):  # graph capture, buffers
        step()
    nodes, edges = ffi.new("int64_t[1]"), ffi.new("int64_t[1]")
    graph = {}
    if hasattr(lib, "tactic_cuda_graph_stats") and lib.tactic_cuda_graph_stats(nodes, edges) == 0:
        graph = dict(graph_kernels=int(nodes[0]), graph_programmatic_edges=int(edges[0]))
    wall = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        wall.append(time.perf_counter() - t0)
    check(lib.tactic_context_truncate(ctx, depth + 4))
    row = dict(config=name, options=opts, depth=depth, steps=steps, wall_ms_median=1e3 * float(np.median(wall)),
               wall_ms_mean=1e3 * float(np.mean(wall)), **graph)
    if profile is not None:
        torch, prof_mod = profile
        with prof_mod.profile(activities=[prof_mod.ProfilerActivity.CUDA]) as prof:
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            torch.cuda.synchronize()
            row["profiled_wall_ms"] = 1e3 * (time.perf_counter() - t0) / steps
        per = defaultdict(lambda: [0.0, 0])
        for ev in prof.events():
            # device-side records (kernels, copies): the CUDA device type, duration from their time range
            if "cuda" not in str(getattr(ev, "device_type", "")).lower():
                continue
            dev_us = ev.time_range.elapsed_us()
            low = ev.name.lower()
            k = ("[copy] " + ev.name) if ("memcpy" in low or "memset" in low) else short(ev.name)
            per[k][0] += dev_us
            per[k][1] += 1
        kernels = sorted(((k, us / steps, n / steps) for k, (us, n) in per.items()), key=lambda r: -r[1])
        row["kernels"] = [dict(kernel=k, us_per_step=us, launches_per_step=n) for k, us, n in kernels]
        row["kernel_us_per_step"] = sum(us for _, us, _ in kernels)
        row["launches_per_step"] = sum(n for _, _, n in kernels)
    lib.tactic_context_free(ctx)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--config", action="append", type=parse_config, default=[],
                    help="NAME:opt=v,opt=v (CUDA options; unnamed ones at their defaults)")
    ap.add_argument("--depth", type=int, default=16, help="tokens prefilled before the timed steps (at least 1: the BOS)")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--tactic-fraction", type=float, default=0.0,
                    help="> 0: attention=tactic with this forced fraction (0: full attention)")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.depth < 1:
        ap.error("--depth must be at least 1 (the prefill holds the BOS token)")
    configs = a.config or [("old", {"matvec_q8_kernel": 3, "decode_fuse": 0}), ("new", {})]
    profile = None
    if not a.no_profile:
        try:
            import torch
            import torch.profiler as prof_mod

            torch.cuda.init()
            profile = (torch, prof_mod)
        except Exception as e:  # noqa: BLE001
            print(f"no per-kernel table: torch.profiler unavailable ({e})", flush=True)
    model = load_model(a.model, owned=False)
    info = model_info(model)
    rows = []
    for name, opts in configs:
        try:
            row = run_config(model, info.n_vocab, name, opts, a.depth, a.steps, a.depth + a.steps + 64, profile,
                             a.tactic_fraction)
        except Exception as e:  # noqa: BLE001 (one broken configuration must not hide the others)
            print(f"config {name}: FAILED {e}", flush=True)
            continue
        rows.append(row)
        print(f"\n== {name} {opts}: wall {row['wall_ms_median']:.3f} ms/step (median of {a.steps}; "
              f"{1e3 / row['wall_ms_median']:.1f} tok/s; graph: {row.get('graph_kernels')} kernels, "
              f"{row.get('graph_programmatic_edges')} programmatic edges)", flush=True)
        if "kernels" in row:
            print(f"   kernels {row['kernel_us_per_step'] / 1e3:.3f} ms/step in {row['launches_per_step']:.0f} launches; "
                  f"profiled wall {row['profiled_wall_ms']:.3f} ms/step", flush=True)
            print(f"   {'kernel':70s} {'us/step':>9s} {'launches':>8s} {'us each':>8s}")
            for k in row["kernels"]:
                each = k["us_per_step"] / k["launches_per_step"] if k["launches_per_step"] else 0
                print(f"   {k['kernel'][:70]:70s} {k['us_per_step']:9.1f} {k['launches_per_step']:8.1f} {each:8.2f}")
    lib.tactic_model_free(model)
    set_options({})
    if a.out:
        Path(a.out).write_text(json.dumps(dict(model=a.model, depth=a.depth, steps=a.steps, rows=rows), indent=1))


if __name__ == "__main__":
    main()
