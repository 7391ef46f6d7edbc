"""Decode speed at depths whose prefill takes many minutes on 2 cores (a 32K context of a
24-layer model), pytactic (full attention, Tactic at forced fractions) against
llama-cpp-python, without re-filling the context for every measurement.

    # fill: prefill --ctx tokens on one side and save the state (timed, so run it on a
    # quiet machine when its prefill figure is wanted; --resume extends a saved state)
    python scripts/bench_depth_states.py fill --side pytactic --model M --ctx 16384 --out S/pyt_16384.bin
    python scripts/bench_depth_states.py fill --side llama --model M --ctx 32768 \\
        --resume S/llama_16384.pkl --out S/llama_32768.pkl
    # decode: restore each saved state and time --gen steps (a quiet machine)
    python scripts/bench_depth_states.py decode --model M --ctx 16384 32768 --states S --fractions 0.065 0.15

Every context of both sides holds --n-ctx tokens (default 32,768 + 80), so a state saved
at one depth restores into the next (pytactic's states name their context size). The
tokens are bench_core.token_stream's: the 16K stream is the 32K stream's prefix. Decode
steps feed the last prompt token again (as bench_core.py), so each attends the whole
context; Tactic's first step after a restore clusters the restored keys and is timed
apart ("1st step s"), as in bench_decode_depth.py.
"""

import argparse
import json
import os
import pickle
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

from bench_core import (llama_without_extra_bufts, pytactic_restore, pytactic_state,  # noqa: E402
                        timed_steps, token_stream)

N_CTX = 32768 + 80


def pytactic_session(model, n_ctx, threads, **kw):
    from pytactic.lowlevel import NativeSession

    return NativeSession(model, n_ctx=n_ctx, n_threads=threads, **kw)


def llama_context(model, n_ctx, threads):
    from llama_cpp import Llama

    llama_without_extra_bufts()
    # (n_threads_batch too: left unset, llama-cpp-python prefills on every core)
    return Llama(model, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, n_batch=512, flash_attn=True,
                 verbose=False)


def fill(a):
    done = 0
    if a.side == "pytactic":
        with pytactic_session(a.model, a.n_ctx, a.threads, attention=1) as s:
            prompt = token_stream(a.ctx, s.n_vocab)
            if a.resume:
                pytactic_restore(s, Path(a.resume).read_bytes())
                done = a.resume_ctx
            t0 = time.perf_counter()
            s.eval(prompt[done:])
            dt = time.perf_counter() - t0
            Path(a.out).write_bytes(pytactic_state(s))
    else:
        llm = llama_context(a.model, a.n_ctx, a.threads)
        prompt = token_stream(a.ctx, llm.n_vocab())
        if a.resume:
            llm.load_state(pickle.loads(Path(a.resume).read_bytes()))
            done = llm.n_tokens
        t0 = time.perf_counter()
        llm.eval(prompt[done:])
        dt = time.perf_counter() - t0
        Path(a.out).write_bytes(pickle.dumps(llm.save_state()))
        del llm
    n = a.ctx - done
    print(f"fill {a.side} {done} -> {a.ctx}: {n} tokens in {dt:.1f} s = {n / dt:.1f} tok/s, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    return {"side": a.side, "from": done, "ctx": a.ctx, "tok_s": n / dt, "seconds": dt}


def decode(a):
    from pytactic._native import ffi, lib

    print(f"model {a.model}\nthreads {a.threads}, gen {a.gen}, context size {a.n_ctx}, "
          f"build {ffi.string(lib.tactic_build_info()).decode()}, load {os.getloadavg()[0]:.1f}", flush=True)
    fr = a.fractions
    print(f"{'depth':>6} | {'full tg':>8} " + " ".join(f"{'tactic ' + str(f):>12} {'1st s':>6}" for f in fr)
          + f" | {'llama tg':>8} | {'full/llama':>10} " + " ".join(f"{'t' + str(f) + '/full':>10}" for f in fr),
          flush=True)
    rows = []
    for n in a.ctx:
        row = {"ctx": n}
        blob = Path(a.states, f"pyt_{n}.bin").read_bytes()
        with pytactic_session(a.model, a.n_ctx, a.threads, attention=1) as s:
            pytactic_restore(s, blob)
            tok = token_stream(n, s.n_vocab)[-1]
            row["full_tok_s"] = timed_steps(s.eval, tok, a.gen)
        row["tactic"] = {}
        for f in fr:
            with pytactic_session(a.model, a.n_ctx, a.threads, attention=2, tactic_force_fraction=f) as s:
                pytactic_restore(s, blob)
                t0 = time.perf_counter()
                s.eval([tok])  # clusters the restored keys
                first = time.perf_counter() - t0
                row["tactic"][str(f)] = {"tok_s": timed_steps(s.eval, tok, a.gen), "first_step_s": first}
        del blob
        llama = Path(a.states, f"llama_{n}.pkl")
        row["llama_tok_s"] = float("nan")
        if llama.exists():
            llm = llama_context(a.model, a.n_ctx, a.threads)
            llm.load_state(pickle.loads(llama.read_bytes()))
            row["llama_tok_s"] = timed_steps(llm.eval, tok, a.gen)
            del llm
        rows.append(row)
        t = row["tactic"]
        print(f"{n:6d} | {row['full_tok_s']:8.2f} "
              + " ".join(f"{t[str(f)]['tok_s']:12.2f} {t[str(f)]['first_step_s']:6.2f}" for f in fr)
              + f" | {row['llama_tok_s']:8.2f} | {row['full_tok_s'] / row['llama_tok_s']:10.2f} "
              + " ".join(f"{t[str(f)]['tok_s'] / row['full_tok_s']:10.2f}" for f in fr), flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fill")
    f.add_argument("--side", choices=["pytactic", "llama"], required=True)
    f.add_argument("--ctx", type=int, required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--resume", default=None, help="a state this side saved at a smaller depth")
    f.add_argument("--resume-ctx", type=int, default=0, help="that state's depth (pytactic)")
    d = sub.add_parser("decode")
    d.add_argument("--ctx", type=int, nargs="+", required=True)
    d.add_argument("--states", required=True, help="folder of pyt_N.bin / llama_N.pkl")
    d.add_argument("--gen", type=int, default=32)
    d.add_argument("--fractions", type=float, nargs="+", default=[0.065])
    for p in (f, d):
        p.add_argument("--model", required=True)
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--n-ctx", type=int, default=N_CTX)
        p.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.cmd == "fill" and a.resume and a.side == "pytactic" and not a.resume_ctx:
        ap.error("--resume-ctx is needed with a pytactic --resume")
    out = fill(a) if a.cmd == "fill" else decode(a)
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "result": out}, indent=1))


if __name__ == "__main__":
    main()
