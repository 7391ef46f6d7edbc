"""A token's logits do not depend on the batch it is evaluated in: the same bytes whether
it is the last of one prefill batch, a decode step after the rest, the end of the
second or third piece of a split, or a row of a batch that asks for every position's
logits. Prefix reuse (a chat turn, a document's cache, the server's sessions) evaluates
the same text in other splits than a fresh run does, so anything less lets a greedy
answer change with the history of the context.

Checked for every kernel path this CPU has (TACTIC_KERNELS=scalar / avx2 / avx512), each
in its own process (the kernel choice is made once per process), on the real Gemma 3
270M (one KV head, sliding-window layers) and on small random models of the
Qwen2.5-0.5B shape (two KV heads of seven query heads each) in the Q4_K_M mix and in
each legacy type (the AVX-512 prefill tiles differ per type). The long probes cross
the 64-key tiles, the 1024-key chunks of split-K decode attention and Gemma's 512-token
window; the short ones the 8-token and 128-token tile blocks of the matmul."""

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pytactic._native import ffi, lib

REPO = Path(__file__).resolve().parent.parent
KERNELS = {"scalar": 1, "avx2": 2, "avx512": 3}

SCRIPT = r"""
import hashlib, json, sys
import numpy as np
from pytactic.lowlevel import NativeSession
from pytactic._native import ffi, lib
model, plan = sys.argv[1], json.loads(sys.stdin.read())
ids, probes = plan["ids"], plan["probes"]
out = {"build": ffi.string(lib.tactic_build_info()).decode(), "probes": []}

def digest(row):
    return hashlib.sha256(np.ascontiguousarray(row, dtype=np.float32).tobytes()).hexdigest()

with NativeSession(model, n_ctx=plan["n_ctx"], n_threads=2) as s:
    def run(pieces, all_rows=False):
        s.reset()
        for piece in pieces[:-1]:
            s.eval(piece)
        return s.eval(pieces[-1], logits_all=all_rows)

    for p in probes:
        x = ids[:p + 1]
        variants = {"one batch": run([x])[-1], "decode step": run([x[:-1], x[-1:]])[-1]}
        h = (p + 1) // 2
        variants["two halves"] = run([x[:h], x[h:]])[-1]
        if p >= 12:
            variants["pieces 5+rest+3"] = run([x[:5], x[5:-3], x[-3:]])[-1]
            variants["pieces rest+9+3"] = run([x[:-12], x[-12:-3], x[-3:]])[-1]
        if p < 200:  # every row's logits: the output product over many tokens
            variants["row of all"] = run([ids[:p + 20]], all_rows=True)[p]
            variants["row of all, split"] = run([ids[:p - p // 3], ids[p - p // 3:p + 9]], all_rows=True)[p // 3]
        ref = variants["one batch"]
        out["probes"].append({"pos": p, "digest": {k: digest(v) for k, v in variants.items()},
                              "maxdiff": {k: float(np.max(np.abs(v - ref))) for k, v in variants.items()}})
print(json.dumps(out))
"""


def impl_available(impl):
    w = np.zeros(34, dtype=np.uint8)
    x = np.zeros(32, dtype=np.float32)
    return lib.tactic_vec_dot(8, ffi.from_buffer(w), 34, ffi.cast("float *", ffi.from_buffer(x)), 32, impl,
                              ffi.new("float *")) == 0


def check_path(kernels, model, ids, probes, n_ctx=2048):
    if not impl_available(KERNELS[kernels]):
        pytest.skip(f"this CPU cannot run the {kernels} kernels")
    env = dict(os.environ)
    env["TACTIC_KERNELS"] = kernels
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    plan = {"ids": list(ids), "probes": probes, "n_ctx": n_ctx}
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(model)], input=json.dumps(plan), capture_output=True,
                       text=True, env=env, timeout=1200)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert f"simd={kernels}" in out["build"], out["build"]
    assert [pr["pos"] for pr in out["probes"]] == probes
    bad = []
    for pr in out["probes"]:
        ref = pr["digest"]["one batch"]
        for name, d in pr["digest"].items():
            if d != ref:
                bad.append((pr["pos"], name, pr["maxdiff"][name]))
    assert not bad, f"{kernels}: logits differ from the one-batch evaluation (position, split, max |diff|): {bad}"


# ---- the real Gemma 3 270M ---------------------------------------------------------------


def gemma_ids(refs, n):
    ids = list(refs["nll"]["ids"])
    assert len(ids) >= n
    return ids[:n]


@pytest.mark.parametrize("kernels", list(KERNELS))
def test_gemma_short(kernels, gemma_path, refs):
    check_path(kernels, gemma_path, gemma_ids(refs, 200), [25, 140])


@pytest.mark.parametrize("kernels", ["avx2", "avx512"])
def test_gemma_long(kernels, gemma_path, refs):
    # past the 512-token window (ring), the 1024-key chunks and several 64-key tiles
    check_path(kernels, gemma_path, gemma_ids(refs, 1200), [1100])


# ---- random Qwen2.5-0.5B-shape models: several KV heads, each weight type -------------------

_spec = importlib.util.spec_from_file_location("make_random_gguf", REPO / "scripts" / "make_random_gguf.py")
mrg = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mrg)

TYPES = ["q4_k_m", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0"]


@pytest.fixture(scope="module")
def random_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("batchdep")
    made = {}

    def get(outtype):
        if outtype not in made:
            path = d / f"qwen05-{outtype}.gguf"
            # qk_scale > 1: peaked attention, so that the order of the softmax sums shows
            mrg.make_random_gguf(path, "qwen2.5-0.5b", outtype, n_layer=2, vocab=2048, qk_scale=4.0,
                                 output_scale=0.1, threads=2)
            made[outtype] = path
        return made[outtype]

    return get


def random_ids(n, vocab=2048, seed=1):
    return np.random.default_rng(seed).integers(300, vocab, size=n).tolist()


@pytest.mark.parametrize("outtype", TYPES)
@pytest.mark.parametrize("kernels", list(KERNELS))
def test_random_model_short(kernels, outtype, random_models):
    # the scalar path is slow: its probes stop short of the 128-token tile blocks
    check_path(kernels, random_models(outtype), random_ids(200), [9, 30] if kernels == "scalar" else [9, 30, 150])


@pytest.mark.parametrize("kernels", ["avx2", "avx512"])
def test_random_model_long(kernels, random_models):
    # (the scalar path's chunking is attention.cpp's, shared with AVX2)
    check_path(kernels, random_models("q4_k_m"), random_ids(1200), [1100])
