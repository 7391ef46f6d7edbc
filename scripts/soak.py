#!/usr/bin/env python3
"""Soak test: memory must stay flat over a long session and over many loads.

  python scripts/soak.py [--model PATH | --tiny] [--tokens 20000] [--n-ctx 1024] [--loads 200]

1. Loads and frees the model (and a context on it) --loads times; prints RSS, open
   file descriptors and memory mappings after warm-up and at the end.
2. Generates --tokens tokens greedily in one context. When the context is full it is
   shifted: the first --keep tokens stay, the older half of the rest is dropped and the
   newer half re-evaluated (tactic_context_truncate + tactic_eval), as llama.cpp's
   context shift does without a RoPE shift. Prints RSS every --every tokens.

--tiny uses a synthetic 2-layer model (tests/gguf_builders.py) so the run takes seconds;
the default is the real Gemma 3 270M file. Output: two tables, and a verdict line each.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
from pytactic import lowlevel  # noqa: E402
from pytactic._native import check, ffi, lib  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
try:  # glibc keeps freed heap memory for reuse; malloc_trim gives it back, so what remains is live
    import ctypes

    _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):
    _malloc_trim = None


def trimmed_rss_mib():
    if _malloc_trim:
        _malloc_trim(0)
    return rss_mib()


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def n_fds():
    return len(os.listdir("/proc/self/fd"))


def n_maps():
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


# Raw handles: the soak frees them itself, every cycle.
def load(path):
    return lowlevel.load_model(path, owned=False)


def context(model, n_ctx, n_threads):
    return lowlevel.new_context(model, owned=False, n_ctx=n_ctx, n_threads=n_threads)


def load_cycle(path, loads, n_threads):
    print(f"## load/free x{loads}: {path.name}")
    print(f"{'cycle':>6} {'RSS MiB':>9} {'trimmed':>8} {'fds':>5} {'maps':>6}")
    rows = []
    t0 = time.time()
    for i in range(loads + 1):
        m = load(path)
        c = context(m, 64, n_threads)
        tok = ffi.new("int32_t[]", [1, 2])
        check(lib.tactic_eval(c, tok, 2, 0), "eval")
        lib.tactic_context_free(c)
        lib.tactic_model_free(m)
        if i in (0, 10) or i % max(1, loads // 5) == 0 or i == loads:
            rows.append((i, rss_mib(), n_fds(), n_maps(), trimmed_rss_mib()))
            print(f"{i:>6} {rows[-1][1]:>9.1f} {rows[-1][4]:>8.1f} {rows[-1][2]:>5} {rows[-1][3]:>6}")
    warm = next(r for r in rows if r[0] >= 10)
    end = rows[-1]
    print(f"verdict: RSS {warm[1]:.1f} -> {end[1]:.1f} MiB (after malloc_trim {warm[4]:.1f} -> {end[4]:.1f}) "
          f"after warm-up (cycle 10 -> {loads}), "
          f"fds {warm[2]} -> {end[2]}, maps {warm[3]} -> {end[3]}, {time.time() - t0:.1f} s")
    return end[1] - warm[1]


def generate(path, n_tokens, n_ctx, keep, every, n_threads):
    print(f"## generate {n_tokens} tokens, n_ctx {n_ctx}, context shift keeping {keep}: {path.name}")
    m = load(path)
    info = ffi.new("tactic_model_info *")
    check(lib.tactic_model_get_info(m, info))
    nv = info.n_vocab
    c = context(m, n_ctx, n_threads)
    history = [2, 100, 200, 300]  # any ids inside the vocabulary
    history = [t % nv for t in history]
    arr = ffi.new("int32_t[]", history)
    check(lib.tactic_eval(c, arr, len(history), 0), "prompt")
    one = ffi.new("int32_t[1]")
    shifts = 0
    rows = []
    t0 = time.time()
    print(f"{'tokens':>7} {'n_past':>7} {'shifts':>6} {'RSS MiB':>9} {'tok/s':>7}")
    for i in range(1, n_tokens + 1):
        logits = np.frombuffer(ffi.buffer(lib.tactic_get_logits(c, -1), nv * 4), np.float32)
        tok = int(np.argmax(logits))
        history.append(tok)
        if lib.tactic_context_n_past(c) + 1 > n_ctx:
            # Shift: keep the first `keep`, drop the older half of the rest, re-evaluate the newer half.
            n_past = lib.tactic_context_n_past(c)
            n_discard = (n_past - keep) // 2
            check(lib.tactic_context_truncate(c, keep), "truncate")
            tail = history[-(n_past - keep - n_discard) - 1:-1]
            history = history[:keep] + tail + [tok]
            arr = ffi.new("int32_t[]", tail)
            check(lib.tactic_eval(c, arr, len(tail), 0), "re-eval")
            shifts += 1
        one[0] = tok
        check(lib.tactic_eval(c, one, 1, 0), "decode")
        if i % every == 0 or i == n_tokens:
            rows.append((i, lib.tactic_context_n_past(c), shifts, rss_mib()))
            print(f"{i:>7} {rows[-1][1]:>7} {shifts:>6} {rows[-1][3]:>9.1f} {i / (time.time() - t0):>7.1f}")
    lib.tactic_context_free(c)
    lib.tactic_model_free(m)
    warm = next((r for r in rows if r[2] >= 1), rows[0])  # after the first shift
    end = rows[-1]
    print(f"verdict: RSS {warm[3]:.1f} -> {end[3]:.1f} MiB from token {warm[0]} (after the first shift) to "
          f"{end[0]}, {shifts} shifts, {time.time() - t0:.1f} s")
    return end[3] - warm[3]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.environ.get("TACTIC_TEST_MODEL", "/root/models/gemma-3-270m-q4_k_m.gguf"))
    ap.add_argument("--tiny", action="store_true", help="use a synthetic tiny model")
    ap.add_argument("--tokens", type=int, default=20000)
    ap.add_argument("--n-ctx", type=int, default=1024)
    ap.add_argument("--keep", type=int, default=4)
    ap.add_argument("--every", type=int, default=1000)
    ap.add_argument("--loads", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-generate", action="store_true")
    ap.add_argument("--skip-loads", action="store_true")
    a = ap.parse_args()
    path = Path(a.model)
    if a.tiny:
        import gguf_builders as gb

        path = Path(tempfile.mkdtemp()) / "tiny-gemma3.gguf"
        path.write_bytes(gb.tiny_model("gemma3", "llama", gb.GGML_Q8_0).build())
    print(f"library: {ffi.string(lib.tactic_build_info()).decode()}")
    if not a.skip_loads:
        load_cycle(path, a.loads, a.threads)
    if not a.skip_generate:
        generate(path, a.tokens, a.n_ctx, a.keep, a.every, a.threads)


if __name__ == "__main__":
    main()
