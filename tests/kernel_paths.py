"""The CPU forward pass run with one kernel path (TACTIC_KERNELS=scalar / avx2 / avx512),
each in its own process because the choice is made once per process. Used by
test_cpu_paths.py (each path against llama.cpp) and test_gpu_forward.py (the spread
between the CPU's own paths: how far two correct implementations of the same arithmetic
land apart on a model, which bounds how close the GPU can be held to the CPU)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from pytactic._native import ffi, lib

REPO = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import json, sys
import numpy as np
from pytactic.lowlevel import NativeSession, log_softmax
from pytactic._native import ffi, lib
model, mode, arg, prompts = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.stdin.read())
out = {"build": ffi.string(lib.tactic_build_info()).decode(), "logp": [], "nll": []}
with NativeSession(model, n_ctx=1024, n_threads=2 if mode != "teacher" else 0, device=1) as s:  # the CPU, even where a GPU is
    for ids in prompts:
        s.reset()
        if mode == "last":
            # the prompt but its last token as prefill, the last one as a decode step:
            # both paths of the pass run
            s.eval(ids[:-1])
            out["logp"].append(log_softmax(s.eval(ids[-1:])[-1]).tolist())
        elif mode == "teacher":
            # every position's logits: the first n_prefill tokens as one prefill, the rest
            # one token a step (as the GPU test runs the GPU); saved to arg (.npy)
            job = json.loads(arg)
            n0 = int(job["n_prefill"])
            rows = [s.eval(ids[:n0], logits_all=True)] + [s.eval([t]) for t in ids[n0:]]
            np.save(job["out"], np.concatenate(rows))
        else:
            # NLL of every next token, evaluated in chunks (all logits of 750 positions are 0.8 GB)
            for b in range(0, len(ids), 250):
                part = ids[b:b + 250]
                lp = log_softmax(s.eval(part, logits_all=True))
                out["nll"] += [float(-lp[i, ids[b + i + 1]]) for i in range(len(part)) if b + i + 1 < len(ids)]
print(json.dumps(out))
"""

KERNELS = {"scalar": 1, "avx2": 2, "avx512": 3}


def impl_available(impl):
    w = np.zeros(34, dtype=np.uint8)
    x = np.zeros(32, dtype=np.float32)
    return lib.tactic_vec_dot(8, ffi.from_buffer(w), 34, ffi.cast("float *", ffi.from_buffer(x)), 32, impl,
                              ffi.new("float *")) == 0


def run_path(kernels, model, prompts, mode="last", arg="-"):
    env = dict(os.environ)
    env["TACTIC_KERNELS"] = kernels
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", SCRIPT, model, mode, arg], input=json.dumps(prompts),
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert f"simd={kernels}" in out["build"], out["build"]
    return np.array(out["nll"]) if mode == "nll" else [np.array(lp) for lp in out["logp"]]


def teacher_forced_path(kernels, model, ids, n_prefill, tmp_dir):
    """Logits of every position of ids on the CPU with this kernel path: ids[:n_prefill]
    as one prefill, the rest one token a step."""
    out = Path(tmp_dir) / f"teacher_{kernels}.npy"
    run_path(kernels, model, [ids], mode="teacher", arg=json.dumps({"n_prefill": n_prefill, "out": str(out)}))
    return np.load(out)
