"""Where one graph-replayed decode attention launch spends its time, from the per-block
timer stamps that TACTIC_ATTN_PROBE makes the tensor-core split kernel and the wide merge
write (native/cuda/attention_decode_mma.cu, kProbe; every stamp for 1-11, the merge's with
the wide merge only, i.e. 5 and 8-11; the K/V-slot kernel's 19, 20, 29-31: start and end): the
launch's ramp (first block start to first data), the spread of the blocks' ends (the tail
of a static wave), per multiprocessor, and the merge after it.

    TACTIC_LIB=build/libtactic.so python3 scripts/attn_probe_times.py --kernels 8 20 --contexts 32768 131072
"""

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from pytactic._native import lib  # noqa: E402
from test_cuda import cuda_attention  # noqa: E402

MODELS = {"llama3-8b-like": (32, 8, 128), "gemma3-270m": (4, 1, 256)}


def last_record(path):
    lines = Path(path).read_text().splitlines()
    head = dict(kv.split("=") for kv in lines[-2].split()[1:])
    vals = np.array([int(x) for x in lines[-1].split()], dtype=np.int64)
    return {k: int(v) for k, v in head.items()}, vals


def summarize(head, vals, kv_bytes):
    H, Hkv, S = head["n_head"], head["n_head_kv"], head["splits"]
    n_ctr = Hkv * math.ceil(H // Hkv / 8)
    nb = S * n_ctr
    sp = vals[: nb * 6].reshape(nb, 6)
    mg = vals[nb * 6: nb * 6 + H * 6].reshape(H, 6)
    if not sp[:, 0].all():
        return dict(error="no split stamps (a kernel without the probe?)")
    t0 = sp[:, 0].min()
    rel = lambda x: (x - t0) / 1e3  # us from the first block's start
    start, wait, first, loop, end = (rel(sp[:, i]) for i in range(5))
    sm = sp[:, 5] & 0xFFFFFFFF
    chunks = sp[:, 5] >> 32
    sm_end = {}
    for s, e in zip(sm, end):
        sm_end[s] = max(sm_end.get(s, -1e9), e)
    sm_end = np.array(list(sm_end.values()))
    out = dict(
        blocks=int(nb), sms=int(len(set(sm.tolist()))),
        start_max=float(start.max()), wait_med=float(np.median(wait)), first_med=float(np.median(first)),
        first_max=float(first.max()),
        end_min=float(end.min()), end_med=float(np.median(end)), end_p90=float(np.percentile(end, 90)),
        end_max=float(end.max()), loop_max=float(loop.max()),
        sm_end_min=float(sm_end.min()), sm_end_med=float(np.median(sm_end)), sm_end_max=float(sm_end.max()),
        chunks_min=int(chunks.min()), chunks_med=float(np.median(chunks)), chunks_max=int(chunks.max()),
    )
    if mg[:, 0].all():
        out.update(merge_start_min=float(rel(mg[:, 0]).min()), merge_wait_max=float(rel(mg[:, 1]).max()),
                   merge_end_max=float(rel(mg[:, 2]).max()))
    # every block's stamps (ns from the first start), smid and chunks, for a closer look
    out["raw"] = [[int(x - t0) if x else -1 for x in r[:5]] + [int(r[5] & 0xFFFFFFFF), int(r[5] >> 32)] for r in sp]
    out["raw_merge"] = [[int(x - t0) if x else -1 for x in r[:3]] + [int(r[3])] for r in mg]
    # rate while streaming: the bytes over first data .. median end
    body = out["end_med"] - out["first_med"]
    out["body_gbs"] = kv_bytes / (body * 1e3) if body > 0 else float("nan")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernels", type=int, nargs="+", default=[8])
    ap.add_argument("--contexts", type=int, nargs="+", default=[32768, 131072])
    ap.add_argument("--models", nargs="*", default=["llama3-8b-like"])
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    rng = np.random.default_rng(3)
    fd, path = tempfile.mkstemp(suffix=".probe")
    os.close(fd)
    os.environ["TACTIC_ATTN_PROBE"] = path
    rows = []
    for model in a.models:
        H, Hkv, D = MODELS[model]
        for n in a.contexts:
            K = rng.standard_normal((Hkv, n, D), dtype=np.float32).astype(np.float16)
            V = rng.standard_normal((Hkv, n, D), dtype=np.float32).astype(np.float16)
            q = rng.standard_normal((H, D)).astype(np.float32)
            for k in a.kernels:
                lib.tactic_cuda_set_option(b"bench_graph", 1)
                lib.tactic_cuda_set_option(b"bench_iters", 64)
                try:
                    cuda_attention(q, K, V, 0, n, 1 / math.sqrt(D), k)
                    ms = lib.tactic_cuda_last_ms()
                finally:
                    lib.tactic_cuda_set_option(b"bench_iters", 0)
                    lib.tactic_cuda_set_option(b"bench_graph", 0)
                head, vals = last_record(path)
                s = summarize(head, vals, 2 * K.nbytes)
                s.update(model=model, n=n, kernel=k, us=ms * 1e3, splits=head["splits"])
                rows.append(s)
                if "error" in s:
                    print(f"{model} n={n} k{k}: {s['error']}", flush=True)
                    continue
                print(f"{model:15s} n={n:6d} k{k:<2d} {s['us']:6.1f} us/launch | blocks {s['blocks']} on {s['sms']} SMs | "
                      f"start<= {s['start_max']:5.1f} wait {s['wait_med']:5.1f} first {s['first_med']:5.1f}/{s['first_max']:5.1f} | "
                      f"end min/med/p90/max {s['end_min']:6.1f} {s['end_med']:6.1f} {s['end_p90']:6.1f} {s['end_max']:6.1f} | "
                      f"SM end min/med/max {s['sm_end_min']:6.1f} {s['sm_end_med']:6.1f} {s['sm_end_max']:6.1f} | "
                      f"merge start {s.get('merge_start_min', float('nan')):6.1f} wait<= {s.get('merge_wait_max', float('nan')):6.1f} "
                      f"end {s.get('merge_end_max', float('nan')):6.1f} | body {s['body_gbs']:6.0f} GB/s | "
                      f"chunks/block {s['chunks_min']}/{s['chunks_med']:.0f}/{s['chunks_max']}", flush=True)
    os.unlink(path)
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
