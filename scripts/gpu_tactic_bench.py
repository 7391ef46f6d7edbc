"""Per-step decode attention cost of one global layer with Tactic on the GPU, against
the full decode kernel and torch SDPA replayed in a CUDA graph.

Shape: Llama-3.1-8B (32 query heads, 8 KV heads, head dim 128, f16 cache). For each
context and forced fraction, tactic_cuda_tactic_step replays each stage from a CUDA
graph over rotating copies of the layer (so that repeats read device memory, as a
step after the other layers would): centroid scoring, selection (per-head cluster cut
+ GQA union + list), sparse attention (+ merge), and the whole step.

Keys (documented synthetic, not i.i.d. noise): per KV head a shared offset (real keys
carry a large common component, with a few channels of large magnitude), plus a
topic centre per run of tokens (runs of geometric length, mean 64 tokens: text is
locally coherent; topics drawn Zipf-like from n/256 of them), plus within-topic noise.
Values are standard normal. The clusters are K-means on the GPU (torch, GEMM-based
assignment, 10 Lloyd iterations, about 16 tokens a cluster), as the native path will
do; its time is printed but it is torch's, not pytactic's.

Usage (on the GPU machine): python scripts/gpu_tactic_bench.py [--contexts 32768,65536,131072]
    [--fractions 0.025,0.05,0.1,0.25] [--p 0.9] [--iters 200] [--out results.json]
(the last row of each context: force_fraction 0, each head's clusters until 1 - (1 - P) / 4
of its centroid mass: the bounded selector's first prefix; its share depends on the keys)."""

import argparse
import json
import math
import os
import subprocess
import time

import numpy as np

from pytactic._native import ffi, lib

N_HEAD, N_KV, D = 32, 8, 128
N_SINK, N_RECENT, N_UNCLUSTERED = 4, 64, 128


def ptr(a, ctype):
    return ffi.cast(ctype, ffi.from_buffer(a))


def check(st):
    assert st == 0, ffi.string(lib.tactic_last_error()).decode()


def synthetic_keys(torch, n, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    dev = "cuda"
    n_topics = max(8, n // 256)
    K = torch.empty((N_KV, n, D), dtype=torch.float16, device=dev)
    for h in range(N_KV):
        mu = torch.randn(D, generator=g, device=dev) * 0.5
        big = torch.randperm(D, generator=g, device=dev)[:4]
        mu[big] += 8.0
        centres = torch.randn((n_topics, D), generator=g, device=dev)
        # runs of geometric length (mean 64), topic per run with Zipf-like popularity
        starts = (torch.rand(n, generator=g, device=dev) < 1.0 / 64).cumsum(0)
        n_runs = int(starts[-1].item()) + 1
        pop = 1.0 / torch.arange(1, n_topics + 1, device=dev, dtype=torch.float32)
        topic_of_run = torch.multinomial(pop, n_runs, replacement=True, generator=g)
        topic = topic_of_run[starts]
        K[h] = (mu + centres[topic] + 0.6 * torch.randn((n, D), generator=g, device=dev)).half()
    V = torch.randn((N_KV, n, D), generator=g, device=dev).half()
    return K, V


def kmeans_gpu(torch, K, c_begin, c_end, cluster_size=16, iters=10, seed=0):
    """Per KV head: order [N_KV][len], offsets [N_KV][cmax+1], n_clusters, centroids."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    length = c_end - c_begin
    C = max(1, round(length / cluster_size))
    orders, offs, ncl, cents = [], [], [], []
    for h in range(N_KV):
        x = K[h, c_begin:c_end].float()
        cen = x[torch.randperm(length, generator=g, device="cuda")[:C]].clone()
        for it in range(iters + 1):
            half = 0.5 * (cen * cen).sum(1)
            a = torch.empty(length, dtype=torch.long, device="cuda")
            for r in range(0, length, 32768):
                a[r : r + 32768] = torch.argmax(x[r : r + 32768] @ cen.T - half, dim=1)
            if it == iters:
                break
            cnt = torch.bincount(a, minlength=C).float()
            s = torch.zeros_like(cen).index_add_(0, a, x)
            nz = cnt > 0
            cen[nz] = s[nz] / cnt[nz, None]
        used, a = torch.unique(a, return_inverse=True)
        order = torch.argsort(a, stable=True) + c_begin
        sizes = torch.bincount(a, minlength=len(used))
        orders.append(order.int().cpu().numpy())
        offs.append(np.concatenate([[0], torch.cumsum(sizes, 0).cpu().numpy()]))
        ncl.append(len(used))
        cents.append(cen[used].cpu().numpy())
    cmax = max(ncl)
    offsets = np.zeros((N_KV, cmax + 1), np.int32)
    centroids = np.zeros((N_KV, cmax, D), np.float32)
    for h in range(N_KV):
        offsets[h, : ncl[h] + 1] = offs[h]
        offsets[h, ncl[h] + 1 :] = offs[h][-1]
        centroids[h, : ncl[h]] = cents[h]
    return np.ascontiguousarray(np.stack(orders)), offsets, np.array(ncl, np.int32), centroids


def sdpa_graph_ms(torch, Kt, Vt, q, iters):
    import torch.nn.functional as F

    qt = torch.from_numpy(q).half().cuda().view(1, N_HEAD, 1, D)
    k, v = Kt[None], Vt[None]
    run = lambda: F.scaled_dot_product_attention(qt, k, v, scale=1.0 / math.sqrt(D), enable_gqa=True)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            run()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = run()
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(5):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        for _ in range(iters):
            graph.replay()
        e1.record()
        torch.cuda.synchronize()
        times.append(e0.elapsed_time(e1) / iters)
    return float(np.median(times)), out.float().cpu().numpy().reshape(N_HEAD, D)


def step_row(n, f, var, args, q, K, V, layout, c_begin, c_end, scale, probs, out_full, full_ms, sdpa_ms, t_km):
    """One table row: the step at forced fraction f (0: the mass target), its stage times,
    the attended share and each head's true attention mass inside the attended set."""
    import torch

    order, offsets, ncl, cent = layout
    shape = ffi.new("tactic_cuda_tactic_shape *")
    shape.n_head, shape.n_head_kv, shape.head_dim, shape.n_ctx = N_HEAD, N_KV, D, n
    shape.n_tokens, shape.c_begin, shape.c_end = n, c_begin, c_end
    shape.max_clusters = offsets.shape[1] - 1
    shape.force_fraction, shape.p, shape.scale = f, args.p, scale
    out = np.empty((N_HEAD, D), np.float32)
    sel = np.empty((N_KV, n), np.int32)
    nsel = np.zeros(N_KV, np.int32)
    ms = np.zeros(7)
    check(lib.tactic_cuda_tactic_step(shape, ptr(q, "float *"), ptr(K, "uint16_t *"), ptr(V, "uint16_t *"),
                                      ptr(order, "int32_t *"), ptr(offsets, "int32_t *"), ptr(ncl, "int32_t *"),
                                      ptr(cent, "float *"), ptr(out, "float *"), ptr(sel, "int32_t *"),
                                      ptr(nsel, "int32_t *"), ffi.cast("double *", ffi.from_buffer(ms))))
    share = float(nsel.mean()) / n
    mass = []
    for g in range(N_KV):
        idx = torch.from_numpy(sel[g, : nsel[g]].astype(np.int64)).cuda()
        mass += probs[g][:, idx].sum(-1).tolist()
    oerr = float(np.linalg.norm(out - out_full) / np.linalg.norm(out_full))
    row = dict(n_tokens=n, fraction=f, queries=args.queries, fused=var["fused"], mma=var["mma"],
               group_budget=var["group_budget"], select=var["select"], score=var["score"], attend=var["attend"],
               score_blocks=var.get("score_blocks", 0),
               tail=var["tail"] if f == 0 else 0,
               copies_opt=var["copies"], p=None if f > 0 else args.p, attended_share=share,
               head_mass_min=min(mass), head_mass_mean=float(np.mean(mass)), attended_min=int(nsel.min()),
               attended_max=int(nsel.max()), score_ms=ms[0], cut_ms=ms[1], union_ms=ms[2],
               select_ms=ms[1] + ms[2], attend_ms=ms[3], merge_ms=ms[4], sparse_attention_ms=ms[3] + ms[4],
               step_ms=ms[5], copies=int(ms[6]), attn_blocks=var["blocks"], full_kernel_ms=full_ms,
               sdpa_graph_ms=sdpa_ms, speedup_vs_sdpa=sdpa_ms / ms[5], speedup_vs_full=full_ms / ms[5],
               out_rel_diff_vs_full=oerr, kmeans_torch_s=t_km, clusters_per_kv_head=float(ncl.mean()))
    label = f"{f:.3f}" if f > 0 else f"P={args.p}"
    print(f"| {label} | {share*100:5.1f}% ({nsel.min()}-{nsel.max()}) | {min(mass):.3f} / {np.mean(mass):.3f} | "
          f"{ms[0]*1e3:6.1f} | {(ms[1]+ms[2])*1e3:6.1f} ({ms[1]*1e3:.1f}+{ms[2]*1e3:.1f}) | "
          f"{(ms[3]+ms[4])*1e3:6.1f} ({ms[3]*1e3:.1f}+{ms[4]*1e3:.1f}) | {ms[5]*1e3:6.1f} | "
          f"{sdpa_ms/ms[5]:5.2f}x | {full_ms/ms[5]:5.2f}x | {oerr:.2e} |", flush=True)
    return row


FUSED_MARKS = {0: "entry", 1: "cut: past pdl_wait", 16: "cut: partials loaded", 2: "cut: partials merged",
               17: "cut: keys", 18: "cut: shared histogram", 3: "cut: histogram added",
               4: "cut: barrier 1", 5: "cut: digit, candidates", 6: "cut: barrier 2", 8: "cut: candidates taken",
               13: "cut: candidates placed", 7: "cut: resolved", 9: "counts known", 10: "attention streamed",
               11: "partials written", 12: "merged (end)"}
FUSED_VALUES = {14: "candidates at the cut's prefix", 15: "candidates taken"}  # (+ 1 as stored)
SCORE_MARKS = {0: "entry", 1: "past pdl_wait", 2: "scores written", 3: "partials written (end)"}


def print_trace():
    """A trace build's phase timestamps of the last step replayed (the last layer copy): per
    mark, min / median / max over blocks, us after the scoring kernel's first pdl_wait return."""
    fused = np.zeros((1024, 24), np.uint64)
    score = np.zeros((1024, 24), np.uint64)
    check(lib.tactic_cuda_step_trace(ffi.cast("uint64_t *", ffi.from_buffer(fused)),
                                     ffi.cast("uint64_t *", ffi.from_buffer(score))))
    t1 = score[:, 1][score[:, 1] > 0]
    t0 = int(t1.min()) if t1.size else int(fused[:, 0][fused[:, 0] > 0].min())
    for name, tab, marks in (("scores", score, SCORE_MARKS), ("fused step", fused, FUSED_MARKS)):
        print(f"trace, {name}: us after the scores' first pdl_wait return (min / median / max over blocks)")
        for m, label in marks.items():
            v = tab[:, m][tab[:, m] > 0].astype(np.int64) - t0
            if v.size:
                print(f"  {m:2d} {label:28s} {v.min()/1e3:7.2f} {np.median(v)/1e3:7.2f} {v.max()/1e3:7.2f}  ({v.size} blocks)")
    for m, label in FUSED_VALUES.items():
        v = fused[:, m][fused[:, m] > 0].astype(np.int64) - 1
        if v.size:
            print(f"  {m:2d} {label:28s} {v.min():7d} {int(np.median(v)):7d} {v.max():7d}  (a block's count)")


def set_variant(v):
    check(lib.tactic_cuda_set_option(b"tactic_group_budget", v["group_budget"]))
    check(lib.tactic_cuda_set_option(b"tactic_copies", v["copies"]))
    check(lib.tactic_cuda_set_option(b"tactic_blocks", v["blocks"]))
    check(lib.tactic_cuda_set_option(b"tactic_fused", v["fused"]))
    check(lib.tactic_cuda_set_option(b"tactic_mma", v["mma"]))
    check(lib.tactic_cuda_set_option(b"tactic_select", v["select"]))
    check(lib.tactic_cuda_set_option(b"tactic_score", v["score"]))
    check(lib.tactic_cuda_set_option(b"tactic_attend", v["attend"]))
    check(lib.tactic_cuda_set_option(b"pdl", v.get("pdl", 1)))  # (a variant may turn PDL off)
    check(lib.tactic_cuda_set_option(b"tactic_tail", v["tail"]))
    check(lib.tactic_cuda_set_option(b"tactic_score_blocks", v.get("score_blocks", 0)))  # (scores 5's grid)
    check(lib.tactic_cuda_set_option(b"tactic_stream", v["stream"]))  # (the fused step's streaming / merge)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--contexts", default="32768,65536,131072")
    ap.add_argument("--fractions", default="0.025,0.05,0.1,0.25")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--p", type=float, default=0.9, help="the mass target of the last row (force_fraction 0)")
    ap.add_argument("--copies", type=int, default=0, help="layer copies rotated (0: enough to leave the L2)")
    ap.add_argument("--blocks", type=int, default=0, help="sparse attention blocks (0: one full wave)")
    ap.add_argument("--queries", default="shared", choices=["shared", "independent"],
                    help="shared: the heads of a KV group share a direction (real GQA); independent: each head "
                         "its own random query, as in a random-weight model (its union is larger)")
    ap.add_argument("--fused", type=int, default=1, help="option tactic_fused: 1 the streaming attention kernel "
                                                         "merging in its last block, 0 the earlier kernel + merge")
    ap.add_argument("--no-mass-row", action="store_true", help="skip the P row (force_fraction 0)")
    ap.add_argument("--group-budget", type=int, default=1,
                    help="option tactic_group_budget: 1 (default) a forced fraction is each KV group's budget "
                         "(the union holds it), 0 each query head's")
    ap.add_argument("--mma", type=int, default=1, help="option tactic_mma: 1 (default) the streaming kernel on tensor "
                                                        "cores, 0 on FMAs")
    ap.add_argument("--select", type=int, default=9,
                    help="option tactic_select: 1 one block per query head (group budget: per KV head), 3 spread "
                         "over many blocks a KV head, from the scores' partials, with candidates; 4 that with one radix "
                         "level (one barrier fewer); 9 (default) 4 inside the attention kernel, 10 that scoring too")
    ap.add_argument("--score", type=int, default=5,
                    help="option tactic_score: 2 all rows requested before "
                         "pdl_wait, q in shared memory, 3 that kernel with the rows after pdl_wait, 4 that on tensor "
                         "cores, 5 (default) that in one resident wave with its first loads before pdl_wait")
    ap.add_argument("--attend", type=int, default=2,
                    help="option tactic_attend (the tensor-core streaming attention): 1 four warps a block, the "
                         "sequential merge tail; 2 eight warps (head_dim 128) + the parallel tail; 3 four warps + "
                         "the parallel tail; 4 that with TMA bulk row copies (sm_90); 5, 6: 2, 3 with pieces that never "
                         "span two KV heads")
    ap.add_argument("--tail", type=int, default=1,
                    help="option tactic_tail: 1 (default) the output estimate of the unattended clusters under the "
                         "mass target (the P row; forced fractions never run it), 0 off")
    ap.add_argument("--stream", type=int, default=8,
                    help="option tactic_stream (the fused step after the counts are known): 8 (default) the first "
                         "copies issued before q's fragments are built, 0 after them")
    ap.add_argument("--variants", default="",
                    help="more passes over the same keys, ';'-separated, each 'name=value,...' of group_budget, "
                         "copies, blocks, fused, mma, select, score, attend, pdl, tail, score_blocks, stream "
                         "(e.g. 'group_budget=1;mma=1')")
    ap.add_argument("--trace", action="store_true",
                    help="print each row's phase timestamps (a library built with cmake -DTACTIC_STEP_TRACE=ON)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import torch

    torch.backends.cuda.matmul.allow_tf32 = True
    commit = os.environ.get("TACTIC_COMMIT") or subprocess.run(["git", "log", "--oneline", "-1"], capture_output=True,
                                                               text=True).stdout.strip()
    rows = []
    print(f"GPU: {torch.cuda.get_device_name(0)}; commit: {commit or '?'}")
    print("per global layer, 8B shape (32 q heads, 8 KV heads, D 128, f16); ms per step, CUDA graphs")
    for n in [int(x) for x in args.contexts.split(",")]:
        t0 = time.time()
        Kt, Vt = synthetic_keys(torch, n, seed=n)
        c_begin, c_end = N_SINK, n - N_RECENT - N_UNCLUSTERED
        torch.cuda.synchronize()
        t1 = time.time()
        layout = kmeans_gpu(torch, Kt, c_begin, c_end)
        torch.cuda.synchronize()
        t_km = time.time() - t1
        K = Kt.cpu().numpy()
        V = Vt.cpu().numpy()
        rng = np.random.default_rng(n)
        # queries: per KV group a shared direction towards one topic's keys plus own parts
        q = np.empty((N_HEAD, D), np.float32)
        for g in range(N_KV):
            anchor = K[g, rng.integers(c_begin, c_end)].astype(np.float32)
            for j in range(N_HEAD // N_KV):
                if args.queries == "independent":  # each head towards its own token's keys
                    anchor = K[g, rng.integers(c_begin, c_end)].astype(np.float32)
                q[g * (N_HEAD // N_KV) + j] = 0.25 * anchor + 0.5 * rng.standard_normal(D)
        scale = 1.0 / math.sqrt(D)

        check(lib.tactic_cuda_set_option(b"bench_iters", args.iters))
        base = dict(group_budget=args.group_budget, copies=args.copies, blocks=args.blocks, fused=args.fused,
                    mma=args.mma, select=args.select, score=args.score, attend=args.attend, tail=args.tail,
                    stream=args.stream)
        set_variant(base)
        out_full = np.empty((N_HEAD, D), np.float32)
        check(lib.tactic_cuda_attention(ptr(q, "float *"), N_HEAD, N_KV, D, ptr(K, "uint16_t *"), ptr(V, "uint16_t *"),
                                        n, 0, n, scale, ptr(out_full, "float *")))
        full_ms = float(lib.tactic_cuda_last_ms())
        sdpa_ms, out_sdpa = sdpa_graph_ms(torch, Kt, Vt, q, args.iters)
        err = float(np.linalg.norm(out_sdpa - out_full) / np.linalg.norm(out_full))
        print(f"\n{n} tokens ({args.queries} queries per group): "
              f"synthetic keys {t1 - t0:.1f} s, K-means (torch, {int(layout[2].mean())} clusters/KV head) "
              f"{t_km:.2f} s; full kernel {full_ms*1e3:.1f} us, torch SDPA graph {sdpa_ms*1e3:.1f} us (rel diff {err:.1e})")
        fracs = [float(x) for x in args.fractions.split(",")] + ([] if args.no_mass_row else [0.0])
        # each head's true attention weights (float32, on the GPU): the mass the selection reaches
        qt = torch.from_numpy(q).cuda()
        probs = torch.softmax(scale * torch.einsum("gjd,gnd->gjn", qt.view(N_KV, N_HEAD // N_KV, D), Kt.float()), -1)
        variants = [base] + [dict(base, **{k: int(v) for k, v in (kv.split("=") for kv in var.split(","))})
                             for var in args.variants.split(";") if var.strip()]
        for var in variants:
            set_variant(var)
            print(f"\nvariant {var}")
            print("| fraction | attended / KV head | head mass min / mean | scores us | selection us (cut+union) | "
                  "sparse attention us (attend+merge) | step us | vs SDPA | vs full | out vs full |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for f in fracs:  # 0.0: the mass target P = --p
                rows.append(step_row(n, f, var, args, q, K, V, layout, c_begin, c_end, scale, probs, out_full,
                                     full_ms, sdpa_ms, t_km))
                if args.trace:
                    print_trace()
        check(lib.tactic_cuda_set_option(b"bench_iters", 0))
        del Kt, Vt, K, V
        torch.cuda.empty_cache()
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(dict(gpu=torch.cuda.get_device_name(0), commit=commit,
                           command="python scripts/gpu_tactic_bench.py " + " ".join(
                               f"--{k} {v}" for k, v in vars(args).items() if k != "out" and v is not None),
                           shape=dict(n_head=N_HEAD, n_head_kv=N_KV, head_dim=D, n_sink=N_SINK,
                                      n_recent_plus_unclustered=N_RECENT + N_UNCLUSTERED, cluster_size=16),
                           rows=rows), fh, indent=1)


if __name__ == "__main__":
    main()
