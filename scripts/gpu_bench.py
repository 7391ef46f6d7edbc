"""Times the CUDA kernels on a GPU and prints a table (JSON with --out).

  * matvec (decode's W x): the Gemma 3 270M shapes and large ones, GB/s of weight
    bytes against the measured device-to-device copy bandwidth;
  * decode attention over an f16 KV cache at 16K-128K tokens: full, and sparse over
    10% / 5% of the tokens (per-KV-head index lists), against torch's
    scaled_dot_product_attention on the same data (torch is needed for the copy
    bandwidth and that comparison; the rest runs without it).

Every timed kernel is first checked against a numpy float64 reference. Times are the
median over 5 trials of many launches (CUDA events), rotating among copies of the
weights / KV cache so that repeats stream from HBM, not from L2.

  TACTIC_LIB=build/libtactic.so python3 scripts/gpu_bench.py --out gpu_bench.json
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from pytactic._native import ffi, lib  # noqa: E402
from test_cuda import ATTN_KERNEL_DEFAULT, MMA_TOL, TYPES, cuda_attention, cuda_attention_indexed, random_rows, ref_attention, ref_dequantize, rel_err  # noqa: E402


def check(st):
    if st != 0:
        raise RuntimeError(ffi.string(lib.tactic_last_error()).decode())


def set_opt(name, value):
    check(lib.tactic_cuda_set_option(name.encode(), value))


def timed(fn, iters):
    set_opt("bench_iters", iters)
    try:
        out = fn()
    finally:
        ms = lib.tactic_cuda_last_ms()
        set_opt("bench_iters", 0)
    return out, ms


def copy_bandwidth():
    """Device-to-device copy through torch, bytes read + written, GB/s."""
    import torch

    n = 1 << 30  # 1 GiB
    a = torch.empty(n, dtype=torch.uint8, device="cuda")
    a.random_(0, 255)
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    times = []
    for _ in range(10):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        b.copy_(a)
        e1.record()
        torch.cuda.synchronize()
        times.append(e0.elapsed_time(e1))
    ms = float(np.median(times))
    del a, b
    torch.cuda.empty_cache()
    return 2 * n / ms / 1e6


MATVEC_VARIANTS = [(1, 1), (1, 2), (1, 4), (2, 1), (2, 2), (2, 4)]  # (kernel version, rows per warp)
MATVEC_CASES = [  # label, type, n_rows, n_cols
    ("gemma270m attn_q", "Q5_0", 1024, 640),
    ("gemma270m ffn_up", "Q5_0", 2048, 640),
    ("gemma270m ffn_down", "Q6_K", 640, 2048),
    ("gemma270m attn_out", "Q4_K", 640, 1024),
    ("gemma270m output", "Q8_0", 262144, 640),
    ("large 14336x4096", "F16", 14336, 4096),
] + [(f"8B {r}x{c}", t, r, c) for t in ("Q4_K", "Q5_K", "Q6_K", "Q8_0", "Q4_0")
     for r, c in ((4096, 4096), (1024, 4096), (14336, 4096), (4096, 14336))] + [
    ("8B output 128256x4096", "Q6_K", 128256, 4096),
    ("8B output 128256x4096", "Q4_K", 128256, 4096),
]
# What decode launches for the FFN's gate and up: both matrices in one launch, act(gate x) *
# (up x) in the epilogue (epi 2 = SiLU); bytes = both matrices. Only with --q8-variants.
MATVEC_Q8_FUSED_CASES = [("8B gate+up 2x14336x4096", t, 14336, 4096, 2) for t in ("Q4_K", "Q5_K", "Q6_K", "Q8_0", "Q4_0")]
Q8_TYPES = {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"}


def bench_matvec(rng, copy_gbs, quick, only=None):
    """Per case: the f32-activation kernels (v0 = default variant; every variant unless
    quick) and, for the quantized types, v3 = x quantized to 8-bit blocks as the CPU does
    + dp4a (what decode runs; x is quantized once outside the timed launches, as decode
    quantizes a vector once for the matrices that read it)."""
    rows = []
    for label, name, n_rows, n_cols in MATVEC_CASES:
        if only and not any(o in f"{label} {name}" for o in only):
            continue
        data = random_rows(rng, name, n_rows, n_cols)
        x = rng.standard_normal(n_cols).astype(np.float32)
        y = np.empty(n_rows, np.float32)
        call = lambda: check(lib.tactic_cuda_matvec(TYPES[name][0], data, len(data), n_rows, n_cols,
                                                    ffi.cast("float *", ffi.from_buffer(x)),
                                                    ffi.cast("float *", ffi.from_buffer(y))))
        # correctness first (numpy float64 twin)
        call()
        ref = ref_dequantize(name, data, n_rows * n_cols).reshape(n_rows, n_cols) @ x.astype(np.float64)
        err = rel_err(y, ref)
        if not err < 1e-5:
            print(f"MISMATCH matvec {label} {name}: rel err {err:.2e}", flush=True)
        variants = {}
        iters = 200 if len(data) > (64 << 20) else 1000
        for version, rpw in ([(0, 0)] if quick else [(0, 0)] + MATVEC_VARIANTS):
            set_opt("matvec_version", version)
            set_opt("matvec_rows", rpw)
            _, ms = timed(call, iters)
            variants[f"v{version}r{rpw}"] = ms
        set_opt("matvec_rows", 0)
        err3 = None
        if name in Q8_TYPES:
            # the quantization's own error, not the kernel's, sets the tolerance here
            # (tests/test_cuda_matvec_q8.py holds the kernel to the CPU's arithmetic)
            set_opt("matvec_version", 3)
            set_opt("matvec_q8_kernel", 3)
            call()
            err3 = rel_err(y, ref)
            if not err3 < 3e-2:
                print(f"MISMATCH matvec {label} {name} v3: rel err {err3:.2e}", flush=True)
            _, variants["v3"] = timed(call, iters)
            set_opt("matvec_rows", 2)  # the double-tile variant
            _, variants["v3t2"] = timed(call, iters)
            set_opt("matvec_rows", 0)
            # v4: v3's tiles with each warp's copy pipeline spanning rows (the decode default)
            set_opt("matvec_q8_kernel", 4)
            y[:] = np.nan
            call()
            err4 = rel_err(y, ref)
            if not err4 < 3e-2:
                print(f"MISMATCH matvec {label} {name} v4: rel err {err4:.2e}", flush=True)
            _, variants["v4"] = timed(call, iters)
            set_opt("matvec_rows", 4)  # four stages
            _, variants["v4s4"] = timed(call, iters)
            set_opt("matvec_rows", 1)  # a row per warp, a block per 4 rows (v3's grid)
            _, variants["v4r1"] = timed(call, iters)
            set_opt("matvec_rows", 0)
            set_opt("matvec_q8_kernel", 3)
            _, variants["v3"] = timed(call, iters)  # again, after v4: both measured in the same state
            set_opt("matvec_q8_kernel", 5)
        set_opt("matvec_version", 0)
        decode = "v4" if "v4" in variants else "v0r0"  # the kernel decode ran (v5 since: --q8-variants)
        ms = variants[decode]
        gbs = len(data) / ms / 1e6
        rows.append(dict(case=label, type=name, n_rows=n_rows, n_cols=n_cols, bytes=len(data), rel_err=err,
                         rel_err_q8=err3, ms_by_variant=variants, decode_kernel=decode,
                         us=ms * 1e3, gbs=gbs, share_of_copy=gbs / copy_gbs if copy_gbs else None))
        print(f"matvec {label:22s} {name:5s} {n_rows:7d}x{n_cols:<6d} {len(data)/1e6:8.2f} MB "
              f"{ms*1e3:9.2f} us {gbs:7.0f} GB/s" + (f" ({100*gbs/copy_gbs:4.1f}% of copy)" if copy_gbs else "")
              + f"  {decode}  " + " ".join(f"{k}:{v*1e3:.1f}" for k, v in variants.items()), flush=True)
    return rows


# 8-bit-activation kernel variants by name: kernel 3/4/5, then r<N> ("matvec_rows" N: v3 t2
# = two stages; v4 s4 = four stages, r1 = a row per warp; v5 r1 / r4 = rows per warp),
# w<N> ("matvec_wait" N, v5 Q4_K/Q5_K: 1, the default, the first chunk of weights with
# coherent loads issued before pdl_wait; 0 with ld.global.nc, after it), a trailing "p" = with programmatic dependent launch (option "pdl"), then "g"
# = the timed launches replayed from a CUDA graph (option "bench_graph", as decode replays
# them; PDL launches become programmatic edges). E.g. v5w0pg: v5, the old wait placement, PDL, graph.
def q8_variant_options(v):
    m = re.fullmatch(r"v(\d)(?:r(\d+))?(?:w(\d+))?(p?)(g?)", v)
    if not m:
        raise SystemExit(f"unknown 8-bit-activation variant {v!r} (e.g. v4, v5p, v5r1, v5w1p, v5pg)")
    return {"matvec_version": 3, "matvec_q8_kernel": int(m[1]), "matvec_rows": int(m[2] or 0),
            "matvec_wait": int(m[3] or 1), "pdl": int(bool(m[4])), "bench_graph": int(bool(m[5]))}


def bench_matvec_q8(rng, copy_gbs, variants, only=None):
    """Only the 8-bit-activation kernels, the named variants, each checked against the
    first one's output (no float64 reference: tests/test_cuda_matvec_q8.py holds the
    kernels to the CPU's arithmetic). Fast enough for a short device call."""
    rows = []
    defaults = {"matvec_version": 0, "matvec_q8_kernel": 5, "matvec_rows": 0, "matvec_wait": 1, "pdl": 0,
                "bench_graph": 0}
    for label, name, n_rows, n_cols, epi in [c + (None,) for c in MATVEC_CASES] + MATVEC_Q8_FUSED_CASES:
        if name not in Q8_TYPES or (only and not any(o in f"{label} {name}" for o in only)):
            continue
        data = random_rows(rng, name, n_rows, n_cols)
        data1 = random_rows(rng, name, n_rows, n_cols) if epi else None  # up, beside gate
        x = rng.standard_normal(n_cols).astype(np.float32)
        y = np.empty(n_rows, np.float32)
        xp, yp = ffi.cast("float *", ffi.from_buffer(x)), ffi.cast("float *", ffi.from_buffer(y))
        if epi:  # one launch of the fused decode epilogue (tactic_cuda_matvec_q8_epilogue)
            call = lambda: check(lib.tactic_cuda_matvec_q8_epilogue(TYPES[name][0], data, data1, len(data), n_rows,
                                                                    n_cols, xp, epi, yp))
        else:
            call = lambda: check(lib.tactic_cuda_matvec(TYPES[name][0], data, len(data), n_rows, n_cols, xp, yp))
        n_bytes = len(data) * (2 if epi else 1)
        iters = 200 if n_bytes > (64 << 20) else 500
        times, errs, first = {}, {}, None
        for v in variants:
            for k, val in q8_variant_options(v).items():
                set_opt(k, val)
            try:
                y[:] = np.nan
                call()
                if first is None:
                    first = y.copy()
                errs[v] = float(np.max(np.abs(y - first)) / (np.max(np.abs(first)) + 1e-30))
                if not errs[v] < 1e-5:
                    print(f"MISMATCH matvec {label} {name} {v} vs {variants[0]}: {errs[v]:.2e}", flush=True)
                _, times[v] = timed(call, iters)
            finally:
                for k, val in defaults.items():
                    set_opt(k, val)
        rows.append(dict(case=label, type=name, n_rows=n_rows, n_cols=n_cols, bytes=n_bytes,
                         matrices=2 if epi else 1, epilogue=epi, ms_by_variant=times, max_diff_vs_first=errs))
        print(f"{label:22s} {name:5s} {n_bytes/1e6:7.2f} MB " + " ".join(
            f"{v}:{times[v]*1e3:6.2f}us" + (f"({100*n_bytes/times[v]/1e6/copy_gbs:4.1f}%)" if copy_gbs else "")
            for v in variants), flush=True)
    return rows


def torch_sdpa_ms(K, V, q, lists, iters):
    """torch SDPA (GQA) on the same f16 data, full or over gathered token lists; median ms."""
    import torch
    import torch.nn.functional as F

    n_head, D = q.shape
    n_kv = K.shape[0]
    copies = max(1, min(8, math.ceil((256 << 20) / (2 * K.nbytes))))
    Kt = [torch.from_numpy(K).cuda() for _ in range(copies)]
    Vt = [torch.from_numpy(V).cuda() for _ in range(copies)]
    qt = torch.from_numpy(q).to(torch.float16).cuda().view(1, n_head, 1, D)
    idx = None
    if lists is not None:
        idx = torch.from_numpy(np.stack(lists).astype(np.int64)).cuda()  # equal lengths
        idx = idx[:, :, None].expand(-1, -1, D)

    def run(i):
        k, v = Kt[i % copies], Vt[i % copies]
        if idx is not None:
            k, v = torch.gather(k, 1, idx), torch.gather(v, 1, idx)
        return F.scaled_dot_product_attention(qt, k[None], v[None], scale=1.0 / math.sqrt(D), enable_gqa=True)

    out = run(0)
    for i in range(copies):
        run(i)
    torch.cuda.synchronize()
    times = []
    for _ in range(5):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        for i in range(iters):
            run(i)
        e1.record()
        torch.cuda.synchronize()
        times.append(e0.elapsed_time(e1) / iters)
    res = out.float().cpu().numpy().reshape(n_head, D)
    del Kt, Vt
    torch.cuda.empty_cache()
    return float(np.median(times)), res


def torch_sdpa_graph_ms(K, V, q, iters):
    """torch SDPA (GQA, full) replayed in a CUDA graph: one graph of one call per KV copy
    (as a decode step's graph replays), median ms per call over 5 trials."""
    import torch
    import torch.nn.functional as F

    n_head, D = q.shape
    copies = max(1, min(8, math.ceil((256 << 20) / (2 * K.nbytes))))
    Kt = [torch.from_numpy(K).cuda()[None] for _ in range(copies)]
    Vt = [torch.from_numpy(V).cuda()[None] for _ in range(copies)]
    qt = torch.from_numpy(q).to(torch.float16).cuda().view(1, n_head, 1, D)
    scale = 1.0 / math.sqrt(D)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture
        for i in range(copies):
            F.scaled_dot_product_attention(qt, Kt[i], Vt[i], scale=scale, enable_gqa=True)
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for i in range(copies):
            out = F.scaled_dot_product_attention(qt, Kt[i], Vt[i], scale=scale, enable_gqa=True)
    reps = max(1, iters // copies)
    g.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(5):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        for _ in range(reps):
            g.replay()
        e1.record()
        torch.cuda.synchronize()
        times.append(e0.elapsed_time(e1) / (reps * copies))
    res = out.float().cpu().numpy().reshape(n_head, D)
    del g, Kt, Vt
    torch.cuda.empty_cache()
    return float(np.median(times)), res


def bench_attention_kernels(rng, contexts, have_torch, copy_gbs, kernels, split_counts, models=None, eager=True):
    """Full decode attention only: each attn_kernel (and, for kernels 1 and 2, forced
    split counts besides the automatic one), timed replayed from a CUDA graph (and
    launched one by one: "eager"), against torch SDPA eager and replayed in a graph."""
    rows = []
    for model, n_head, n_kv, D in ATTN_MODELS:
        if models and model not in models:
            continue
        n_max = max(contexts)
        K_all = rng.standard_normal((n_kv, n_max, D), dtype=np.float32).astype(np.float16)
        V_all = rng.standard_normal((n_kv, n_max, D), dtype=np.float32).astype(np.float16)
        for n in contexts:
            K = np.ascontiguousarray(K_all[:, :n])
            V = np.ascontiguousarray(V_all[:, :n])
            q = (rng.standard_normal((n_head, D)) * 2).astype(np.float32)
            scale = 1.0 / math.sqrt(D)
            ref = ref_attention(q, K, V, n_kv, [np.arange(n)] * n_kv, scale)
            kv_bytes = n_kv * n * D * 2 * 2
            row = dict(model=model, n_head=n_head, n_head_kv=n_kv, head_dim=D, n_ctx=n, kv_bytes=kv_bytes, kernels={})
            for kern in kernels:
                call = lambda: cuda_attention(q, K, V, 0, n, scale, kern)
                for splits in (split_counts if kern >= 1 else [0]):
                    set_opt("attn_splits", splits)
                    set_opt("bench_graph", 1)
                    out, ms = timed(call, 64)
                    set_opt("bench_graph", 0)
                    _, ms_eager = timed(call, 64) if splits == 0 and eager else (None, float("nan"))
                    set_opt("attn_splits", 0)
                    err = rel_err(out, ref)
                    key = f"k{kern}" + (f"s{splits}" if splits else "")
                    row["kernels"][key] = dict(us=ms * 1e3, us_eager=ms_eager * 1e3, gbs=kv_bytes / ms / 1e6,
                                               rel_err=err, splits=splits)
            if have_torch:
                t_ms, t_out = torch_sdpa_ms(K, V, q, None, 50)
                g_ms, g_out = torch_sdpa_graph_ms(K, V, q, 64)
                row.update(torch_us=t_ms * 1e3, torch_graph_us=g_ms * 1e3, torch_rel_err=rel_err(g_out, ref))
            line = f"attn {model:15s} ctx {n:6d}"
            for key, r in row["kernels"].items():
                pct = f" {100 * r['gbs'] / copy_gbs:3.0f}%" if copy_gbs else ""
                eager = f" (eager {r['us_eager']:.1f})" if r["us_eager"] == r["us_eager"] else ""
                line += f" | {key} {r['us']:6.1f}{eager}{pct} e{r['rel_err']:.0e}"
            if have_torch:
                line += f" | sdpa {row['torch_us']:7.1f} graph {row['torch_graph_us']:7.1f} us"
            print(line, flush=True)
            rows.append(row)
            del K, V
    return rows


ATTN_MODELS = [("llama3-8b-like", 32, 8, 128), ("gemma3-270m", 4, 1, 256)]


def bench_attention(rng, contexts, have_torch, copy_gbs):
    rows = []
    for model, n_head, n_kv, D in ATTN_MODELS:
        n_max = max(contexts)
        K_all = rng.standard_normal((n_kv, n_max, D), dtype=np.float32).astype(np.float16)
        V_all = rng.standard_normal((n_kv, n_max, D), dtype=np.float32).astype(np.float16)
        for n in contexts:
            K = np.ascontiguousarray(K_all[:, :n])
            V = np.ascontiguousarray(V_all[:, :n])
            q = (rng.standard_normal((n_head, D)) * 2).astype(np.float32)
            scale = 1.0 / math.sqrt(D)
            for frac in (1.0, 0.10, 0.05):
                m = int(n * frac)
                if frac == 1.0:
                    lists = None
                    call = lambda: cuda_attention(q, K, V, 0, n, scale, ATTN_KERNEL_DEFAULT)  # what decode runs
                else:
                    lists = [np.sort(rng.choice(n, size=m, replace=False)) for _ in range(n_kv)]
                    call = lambda: cuda_attention_indexed(q, K, V, lists, scale)
                iters = 50 if frac == 1.0 else 200
                set_opt("attn_prefetch", 1)
                _, ms_pf = timed(call, iters)
                set_opt("attn_prefetch", 0)
                out, ms = timed(call, iters)
                ref = ref_attention(q, K, V, n_kv, lists if lists is not None else [np.arange(n)] * n_kv, scale)
                err = rel_err(out, ref)
                if not err < (MMA_TOL if frac == 1.0 and ATTN_KERNEL_DEFAULT else 1e-5):
                    print(f"MISMATCH attention {model} {n} {frac}: rel err {err:.2e}", flush=True)
                bytes_moved = n_kv * m * D * 2 * 2
                gbs = bytes_moved / ms / 1e6
                row = dict(model=model, n_head=n_head, n_head_kv=n_kv, head_dim=D, n_ctx=n, fraction=frac,
                           tokens_per_kv_head=m, us=ms * 1e3, us_prefetch=ms_pf * 1e3, kv_bytes=bytes_moved, gbs=gbs, rel_err=err)
                line = (f"attn {model:15s} ctx {n:6d} {'full' if frac == 1 else f'{int(frac*100)}%':>4s} "
                        f"{ms*1e3:8.1f} us {gbs:6.0f} GB/s (L2 prefetch {ms_pf*1e3:7.1f} us) err={err:.1e}")
                if have_torch:
                    t_ms, t_out = torch_sdpa_ms(K, V, q, lists, iters)
                    row.update(torch_us=t_ms * 1e3, torch_rel_err=rel_err(t_out, ref), speedup_vs_torch=t_ms / ms)
                    line += f" | torch {'sdpa' if lists is None else 'gather+sdpa'} {t_ms*1e3:8.1f} us (x{t_ms/ms:4.2f})"
                rows.append(row)
                print(line, flush=True)
            del K, V
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--quick", action="store_true", help="one matvec variant, contexts 16K and 32K")
    ap.add_argument("--matvec-only", action="store_true", help="no attention table")
    ap.add_argument("--attention-only", action="store_true",
                    help="only full decode attention: the attn_kernel variants against torch SDPA (eager and in a graph)")
    ap.add_argument("--attn-kernels", type=int, nargs="*", default=[0, 1])
    ap.add_argument("--splits", type=int, nargs="*", default=[0],
                    help="kernels 1 and 2: these attn_splits counts (0: automatic)")
    ap.add_argument("--contexts", type=int, nargs="*", default=None)
    ap.add_argument("--no-eager", action="store_true", help="--attention-only: time in a graph only")
    ap.add_argument("--models", nargs="*", default=None, help="--attention-only: these of " + ", ".join(m[0] for m in ATTN_MODELS))
    ap.add_argument("--q8-variants", default=None,
                    help="comma-separated 8-bit-activation variants (v4, v5, v5r1, v4p, ...): only those, "
                         "checked against the first (see q8_variant_options); no f32 kernels, no attention")
    ap.add_argument("--cases", nargs="*", default=None,
                    help="only the matvec cases whose 'label type' contains one of these strings")
    args = ap.parse_args()
    if lib.tactic_cuda_device_count() == 0:
        sys.exit("no usable CUDA GPU")
    name = ffi.new("char[256]")
    check(lib.tactic_cuda_device_name(0, name, 256))
    gpu = ffi.string(name).decode()
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
    commit = os.environ.get("TACTIC_COMMIT")
    if not commit:
        try:
            commit = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=ROOT, text=True).strip()
        except Exception:
            commit = "unknown"
    rng = np.random.default_rng(1234)
    copy_gbs = copy_bandwidth() if have_torch else None
    print(f"GPU {gpu}, commit {commit}, d2d copy {copy_gbs:.0f} GB/s (read+write)" if copy_gbs else f"GPU {gpu}")
    t0 = time.time()
    if args.attention_only:
        contexts = args.contexts or [16384, 32768, 65536, 131072]
        at = bench_attention_kernels(rng, contexts, have_torch, copy_gbs, args.attn_kernels, args.splits, args.models,
                                     not args.no_eager)
        res = dict(gpu=gpu, commit=commit, command="python3 scripts/gpu_bench.py " + " ".join(sys.argv[1:]),
                   copy_gbs=copy_gbs, attention_kernels=at, seconds=time.time() - t0)
        if args.out:
            Path(args.out).write_text(json.dumps(res, indent=1))
        return
    if args.q8_variants:
        variants = args.q8_variants.split(",")
        mv = bench_matvec_q8(rng, copy_gbs, variants, args.cases)
        res = dict(gpu=gpu, commit=commit, copy_gbs=copy_gbs, variants=variants, matvec_q8=mv,
                   command="python3 scripts/gpu_bench.py --q8-variants " + args.q8_variants
                   + (" --cases " + " ".join(args.cases) if args.cases else ""), seconds=time.time() - t0)
        if args.out:
            Path(args.out).write_text(json.dumps(res, indent=1))
        return
    mv = bench_matvec(rng, copy_gbs, args.quick, args.cases)
    contexts = [16384, 32768] if args.quick else [16384, 32768, 65536, 131072]
    at = [] if args.matvec_only else bench_attention(rng, contexts, have_torch, copy_gbs)
    res = dict(gpu=gpu, commit=commit, command="TACTIC_LIB=build-gpu/libtactic.so python3 scripts/gpu_bench.py",
               copy_gbs=copy_gbs, matvec=mv, attention=at, seconds=time.time() - t0)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
    print("\nsummary (matvec: the kernel decode runs; attention without prefetch):")
    print(f"{'matvec case':22s} {'type':5s} {'MB':>8s} {'us':>9s} {'GB/s':>7s} {'%copy':>6s} kernel  (v3: us %copy; v4s4, v4r1: us)")
    for r in mv:
        pct = f"{100*r['share_of_copy']:5.1f}" if r["share_of_copy"] else "  -"
        extra = ""
        v = r["ms_by_variant"]
        if "v3" in v:
            g3 = r["bytes"] / v["v3"] / 1e6
            extra = (f"  (v3: {v['v3']*1e3:.2f} us {100*g3/copy_gbs if copy_gbs else 0:.1f}%; "
                     f"v4s4: {v['v4s4']*1e3:.2f} us; v4r1: {v['v4r1']*1e3:.2f} us)")
        print(f"{r['case']:22s} {r['type']:5s} {r['bytes']/1e6:8.2f} {r['us']:9.2f} {r['gbs']:7.0f} {pct:>6s} {r['decode_kernel']}{extra}")
    print(f"{'attention':15s} {'ctx':>6s} {'sel':>4s} {'us':>8s} {'GB/s':>6s} {'pf us':>8s} {'torch us':>9s}")
    for r in at:
        sel = "full" if r["fraction"] == 1 else f"{int(r['fraction']*100)}%"
        tus = f"{r['torch_us']:9.1f}" if "torch_us" in r else "       -"
        print(f"{r['model']:15s} {r['n_ctx']:6d} {sel:>4s} {r['us']:8.1f} {r['gbs']:6.0f} {r['us_prefetch']:8.1f} {tus}")


if __name__ == "__main__":
    main()
