#!/usr/bin/env python3
"""Prefill attention kernels on the GPU at a model's shape, after a context of depth d:
each kernel the CUDA option "prefill_mma" selects (0 FMA, 1 WMMA, 2 mma.sync
FlashAttention-2 style) through tactic_cuda_prefill_attention, and torch's
scaled_dot_product_attention on the same data as a reference.

    python scripts/bench_prefill_attention.py --depths 0,4096,32768,131072

One layer: n_tokens new queries (default 512) at positions d.., causal, over the f16
cache of d + n_tokens keys; default shape Llama-3.1-8B (32 query heads, 8 KV heads,
head_dim 128). Times are the library's own (bench_iters: five trials of N launches
rotating among copies of K/V so that they come from memory, not L2; the median trial);
SDPA's are CUDA-event times of the same count. TFLOPS counts 4 * n_head * head_dim
flops a (query, visible key) pair: Q K^T and P V, causal keys only. max|diff| compares
each kernel's output with SDPA's (f16 out, so ~1e-3 is agreement)."""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from pytactic._native import check, ffi, lib

# --variants items: "mma" or "mma:rows" (options prefill_mma, prefill_rows)
NAMES = {"0": "fma", "1": "wmma", "2": "fa2", "2:64": "fa2", "2:128": "fa2-128r"}


def flops(n_tokens, depth, n_head, D, window=0):
    keys = sum(min(depth + t + 1, window) if window else depth + t + 1 for t in range(n_tokens))
    return 4.0 * n_head * D * keys


def run_kernel(spec, q, K, V, depth, window, iters):
    n_tokens, n_head, D = q.shape
    n_head_kv, n_ctx, _ = K.shape
    out = np.full(q.shape, np.nan, np.float32)
    mma, _, rows = spec.partition(":")
    check(lib.tactic_cuda_set_option(b"prefill_mma", int(mma)))
    check(lib.tactic_cuda_set_option(b"prefill_rows", int(rows or 0)))
    check(lib.tactic_cuda_set_option(b"bench_iters", iters))
    try:
        check(lib.tactic_cuda_prefill_attention(
            ffi.cast("float *", ffi.from_buffer(q)), n_tokens, n_head, n_head_kv, D,
            ffi.cast("uint16_t *", ffi.from_buffer(K)), ffi.cast("uint16_t *", ffi.from_buffer(V)),
            n_ctx, depth, window, ffi.cast("float *", ffi.from_buffer(out))))
        ms = lib.tactic_cuda_last_ms()
    finally:
        lib.tactic_cuda_set_option(b"bench_iters", 0)
        lib.tactic_cuda_set_option(b"prefill_mma", 2)
        lib.tactic_cuda_set_option(b"prefill_rows", 0)
    return ms, out


def run_sdpa(q, K, V, depth, iters):
    """torch SDPA, bottom-right-aligned causal mask (query t sees keys <= depth + t)."""
    import torch
    import torch.nn.functional as F

    n_tokens, n_head, D = q.shape
    n_head_kv = K.shape[0]
    dev = torch.device("cuda")
    qt = torch.from_numpy(q).to(dev).half().permute(1, 0, 2).unsqueeze(0).contiguous()  # [1, H, L, D]
    kt = torch.from_numpy(K.view(np.float16)).to(dev).unsqueeze(0)  # [1, Hkv, S, D]
    vt = torch.from_numpy(V.view(np.float16)).to(dev).unsqueeze(0)
    S = K.shape[1]
    try:
        from torch.nn.attention.bias import causal_lower_right
        mask = causal_lower_right(n_tokens, S)
        how = "causal_lower_right"
    except Exception:  # older torch: a boolean mask
        mask = torch.ones(n_tokens, S, dtype=torch.bool, device=dev).tril(diagonal=S - n_tokens)
        how = "bool mask"

    def call_gqa():
        return F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask, scale=1.0, enable_gqa=True)

    group = n_head // n_head_kv
    ke = ve = None

    def call_expanded():
        return F.scaled_dot_product_attention(qt, ke, ve, attn_mask=mask, scale=1.0)

    try:
        o = call_gqa()
        fn, how = call_gqa, how + ", enable_gqa"
    except Exception:
        ke = kt.repeat_interleave(group, dim=1)
        ve = vt.repeat_interleave(group, dim=1)
        o = call_expanded()
        fn, how = call_expanded, how + ", K/V expanded to every query head"
    torch.cuda.synchronize()
    for _ in range(2):
        fn()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    trials = []
    for _ in range(5):
        e0.record()
        for _ in range(iters):
            fn()
        e1.record()
        e1.synchronize()
        trials.append(e0.elapsed_time(e1) / iters)
    out = o[0].permute(1, 0, 2).float().cpu().numpy()
    del qt, kt, vt, ke, ve, o
    torch.cuda.empty_cache()
    return sorted(trials)[2], out, how


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depths", default="0,4096,32768,131072")
    ap.add_argument("--n-tokens", type=int, default=512)
    ap.add_argument("--n-head", type=int, default=32)
    ap.add_argument("--n-head-kv", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--window", type=int, default=0)
    ap.add_argument("--variants", default="2,2:128,1,0",
                    help="kernels in order: prefill_mma values, 2:128 = prefill_rows 128")
    ap.add_argument("--fma-max-depth", type=int, default=32768, help="skip the FMA kernel past this depth")
    ap.add_argument("--no-sdpa", action="store_true")
    ap.add_argument("--target-ms", type=float, default=60.0, help="about this long a trial")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    a = ap.parse_args()
    if lib.tactic_cuda_device_count() == 0:
        sys.exit("no usable CUDA GPU")
    buf = ffi.new("char[256]")
    check(lib.tactic_cuda_device_name(0, buf, 256))
    gpu = ffi.string(buf).decode()
    variants = [v for v in a.variants.split(",") if v in NAMES]
    H, Hkv, D, n = a.n_head, a.n_head_kv, a.head_dim, a.n_tokens
    print(f"# {gpu}: prefill attention, {n} tokens after depth d, {H} query heads, {Hkv} KV heads, "
          f"head_dim {D}, window {a.window or 'none'}", flush=True)
    print(f"{'depth':>7} {'kernel':>9} {'ms':>9} {'TFLOPS':>7} {'max|diff| vs sdpa':>18}", flush=True)
    rows = []
    rng = np.random.default_rng(0)
    for depth in [int(d) for d in a.depths.split(",")]:
        n_ctx = depth + n
        t0 = time.perf_counter()
        K = (rng.standard_normal((Hkv, n_ctx, D), dtype=np.float32) * 0.5).astype(np.float16).view(np.uint16)
        V = rng.standard_normal((Hkv, n_ctx, D), dtype=np.float32).astype(np.float16).view(np.uint16)
        q = (rng.standard_normal((n, H, D), dtype=np.float32) * 3 / np.sqrt(D)).astype(np.float16).astype(np.float32)
        fl = flops(n, depth, H, D, a.window)
        ref = None
        res = []
        if not a.no_sdpa and a.window == 0:
            try:
                est = max(0.02, fl / 150e12 * 1e3)
                ms, ref, how = run_sdpa(q, K, V, depth, max(1, int(a.target_ms / est)))
                res.append(("sdpa", ms, None, how))
            except Exception as e:  # no torch, or no GPU build of it: the kernels alone
                print(f"# sdpa failed at depth {depth}: {type(e).__name__}: {e}", flush=True)
        for v in variants:
            if v == "0" and depth > a.fma_max_depth:
                continue
            est = max(0.02, fl / (10e12 if v == "0" else 60e12) * 1e3)
            try:
                ms, out = run_kernel(v, q, K, V, depth, a.window, max(1, int(a.target_ms / est)))
            except Exception as e:
                print(f"# {NAMES[v]} failed at depth {depth}: {type(e).__name__}: {e}", flush=True)
                continue
            diff = float(np.nanmax(np.abs(out - ref))) if ref is not None else None
            if not np.all(np.isfinite(out)):
                diff = float("nan")
            res.append((NAMES[v], ms, diff, None))
        for name, ms, diff, how in res:
            tf = fl / (ms * 1e-3) / 1e12
            ds = "" if diff is None else f"{diff:.2e}"
            print(f"{depth:>7} {name:>9} {ms:>9.3f} {tf:>7.1f} {ds:>18}" + (f"   ({how})" if how else ""), flush=True)
            rows.append({"depth": depth, "kernel": name, "ms": round(ms, 4), "tflops": round(tf, 2),
                         "max_abs_diff_vs_sdpa": diff, "sdpa_call": how})
        print(f"#   (depth {depth}: {time.perf_counter() - t0:.1f}s incl. data)", flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"gpu": gpu, "n_tokens": n, "n_head": H, "n_head_kv": Hkv, "head_dim": D,
                       "window": a.window, "argv": sys.argv[1:], "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
