#!/usr/bin/env python3
"""Side by side: pytactic and llama.cpp's llama-bench on one GGUF, at the same cache
depths, in one sitting; writes docs/results/gpu_e2e.json.

    python scripts/gpu_e2e.py --model llama8b-q4_k_m.gguf --name llama-8B-random-Q4_K_M \\
        --device cuda --llama-bench ~/llama.cpp/build/bin/llama-bench

What is measured, as llama-bench (tools/llama-bench/llama-bench.cpp) defines it:
- depth d: before each timed run the cache holds d tokens (random ids, BOS first, one
  batched prefill, not timed). llama-bench prefills the depth once and restores that
  state before each repetition; here the cache is filled once per depth (growing from
  one depth to the next) and truncated back to d after each timed run: the timed work
  starts from the same d cached positions.
- pp512 @ d: evaluating 512 more random tokens as one batched prefill (llama-bench:
  llama_decode in batches of n_batch=2048, ubatches of 512, then a synchronize);
  prefill tok/s = 512 / seconds.
- tg128 @ d: 128 one-token decode steps after the d cached tokens, the logits of each
  step computed and waited for. llama-bench feeds random ids (BOS first); here each step
  feeds the previous step's argmax (greedy; BOS first): the same work plus an argmax on
  the host. decode tok/s = 128 / seconds. pp and tg are separate runs, as in llama-bench.
- repetitions (-r 2): the mean over repetitions of each repetition's tok/s.
- the K/V cache is f16 on both sides (llama-bench's default -ctk/-ctv f16); llama-bench
  also sizes its context to depth + n_prompt + n_gen, which may exceed the model's
  training context (a warning only); pytactic's n_ctx is the deepest depth plus
  max(n_prompt, n_gen), or the prompt from empty if longer.
- warm-up: llama-bench runs one pp512 and one decode step before each test; here one
  pp512 and one decode step at the start, and one decode step at each depth before it
  is timed (CUDA graphs, lazily grown buffers), all untimed.
- the prompt from empty (one row): 32768 random tokens prefilled from an empty cache
  (llama-bench -p 32768 -n 0 -d 0).

llama-bench runs as `llama-bench -m FILE -ngl 99 -fa 1 -p 512 -n 128 -d DEPTHS -r 2 -o
json` (and `-p 32768 -n 0 -d 0` for the prompt row); its JSON's avg_ts is the figure.
pytactic runs through pytactic.Model; --device is passed to Model only when given (a
pytactic without the argument still runs with --device cpu).

Rows: {"model", "depth", "test", "n_prompt", "n_gen", "attention", "pytactic_decode_tok_s",
"llamacpp_decode_tok_s", "pytactic_prefill_tok_s", "llamacpp_prefill_tok_s",
"decode_ratio", "prefill_ratio", "samples", "run"} (+ "fraction" when a --model-kwarg names
one); "run" indexes "runs", which records the commit, command and device of each
invocation. --rows-to FILE appends to an existing file instead of writing --out afresh:
a row with the same model, depth, test, attention and fraction is updated with the
figures measured now and keeps those it lacks (e.g. llama-bench alone at a depth after
pytactic alone there), its "run" then listing both runs.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import inspect
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pytactic  # noqa: E402

DEFAULT_OUT = ROOT / "docs" / "results" / "gpu_e2e.json"


# -- pytactic --------------------------------------------------------------------------

def open_model(path: str, device: str | None, n_ctx: int, n_threads: int | None, n_batch: int,
               attention: str, extra: dict) -> pytactic.Model:
    kw = dict(n_ctx=n_ctx, n_batch=n_batch, attention=attention, **extra)
    if n_threads:
        kw["n_threads"] = n_threads
    if device is not None:
        if "device" in inspect.signature(pytactic.Model.__init__).parameters:
            kw["device"] = device
        elif device != "cpu":
            raise SystemExit(f"this pytactic's Model has no device argument: cannot run on {device!r}")
    return pytactic.Model(path, **kw)


def truncate(m: pytactic.Model, n_keep: int) -> None:
    """Drop the cache back to n_keep tokens (Model has no public truncate yet)."""
    public = getattr(m, "truncate", None)
    (public or m._truncate)(n_keep)
    assert m.n_past == n_keep, (m.n_past, n_keep)


def native_timings(m: pytactic.Model, reset: bool = False) -> list:
    """The context's native timings: prefill, clustering, decode, decode attention,
    selection (s), attended share; reset restarts them."""
    from pytactic._native import ffi, lib

    tm = ffi.new("double[6]")
    lib.tactic_get_timings(m._ctx, tm, 6, int(reset))
    return list(tm)


class PytacticBench:
    def __init__(self, m: pytactic.Model, seed: int, fill_chunk: int):
        self.m = m
        self.rng = np.random.default_rng(seed)
        self.fill_chunk = fill_chunk

    def random_ids(self, n: int, bos_first: bool) -> list[int]:
        ids = self.rng.integers(0, self.m.n_vocab, size=n).tolist()
        if bos_first and n:
            ids[0] = self.m.token_bos
        return ids

    def fill_to(self, depth: int) -> float:
        """Grow the cache to `depth` tokens; returns the seconds it took."""
        t0 = time.perf_counter()
        while self.m.n_past < depth:
            n = min(self.fill_chunk, depth - self.m.n_past)
            self.m.eval(self.random_ids(n, bos_first=self.m.n_past == 0))
        truncate(self.m, depth)  # no-op unless the cache was deeper
        return time.perf_counter() - t0

    def prefill(self, n: int) -> float:
        """Seconds to prefill n random tokens after the cache; the cache is restored."""
        depth = self.m.n_past
        ids = self.random_ids(n, bos_first=depth == 0)
        t0 = time.perf_counter()
        self.m.eval(ids)
        dt = time.perf_counter() - t0
        assert self.m.n_past == depth + n, (self.m.n_past, depth, n)
        truncate(self.m, depth)
        return dt

    def decode(self, n: int) -> float:
        """Seconds for n greedy one-token steps after the cache; the cache is restored."""
        depth = self.m.n_past
        tok = self.m.token_bos
        t0 = time.perf_counter()
        for _ in range(n):
            self.m.eval([tok])
            tok = int(np.argmax(self.m.logits()))
        dt = time.perf_counter() - t0
        assert self.m.n_past == depth + n, (self.m.n_past, depth, n)
        truncate(self.m, depth)
        return dt


def run_pytactic(a, log) -> dict:
    """{(test, depth): {"prefill": [tok/s...], "decode": [tok/s...]}}"""
    depths = sorted(a.depths)
    n_ctx = max(depths[-1] + max(a.n_prompt, a.n_gen), a.prompt_from_empty)
    t0 = time.perf_counter()
    m = open_model(a.model, a.device, n_ctx, a.n_threads, a.n_batch, a.attention, a.model_kwargs)
    log(f"pytactic: loaded {a.model} in {time.perf_counter() - t0:.1f}s (n_ctx {m.n_ctx})")
    out: dict = {}
    try:
        b = PytacticBench(m, a.seed, a.fill_chunk)
        b.prefill(a.n_prompt)  # warm-up
        b.decode(1)
        for d in depths:
            native_timings(m, reset=True)
            fill_s = b.fill_to(d)
            log(f"pytactic: depth {d}: filled in {fill_s:.1f}s")
            b.decode(1)  # warm-up at this depth (Tactic clusters what the fill left unclustered)
            tm = native_timings(m)
            cluster_s = tm[1] if a.attention == "tactic" else None
            if cluster_s is not None:
                log(f"pytactic: depth {d}: clustering {cluster_s:.3f}s = {cluster_s / fill_s:.1%} of the "
                    f"{fill_s:.1f}s fill (native prefill time {tm[0]:.1f}s)")
            pp = [a.n_prompt / b.prefill(a.n_prompt) for _ in range(a.reps)] if a.n_prompt else []
            tg = [a.n_gen / b.decode(a.n_gen) for _ in range(a.reps)] if a.n_gen else []
            out[("pp+tg", d)] = {"prefill": pp, "decode": tg}
            if cluster_s is not None:
                out[("pp+tg", d)].update(clustering_s=cluster_s, fill_s=fill_s)
            log(f"pytactic: depth {d}: pp{a.n_prompt} {mean(pp):.1f} tok/s, tg{a.n_gen} {mean(tg):.2f} tok/s")
        if a.prompt_from_empty:
            m.reset()
            pp = [a.prompt_from_empty / b.prefill(a.prompt_from_empty) for _ in range(a.reps)]
            out[("prompt", 0)] = {"prefill": pp, "decode": []}
            log(f"pytactic: pp{a.prompt_from_empty} from empty: {mean(pp):.1f} tok/s")
    finally:
        m.close()
        del m
        gc.collect()
    return out


# -- llama.cpp ---------------------------------------------------------------------------

def llama_bench_commands(a) -> list[list[str]]:
    base = [a.llama_bench, "-m", a.model, "-ngl", str(a.ngl), "-fa", "1", "-r", str(a.reps), "-o", "json",
            *shlex.split(a.llama_bench_args)]
    cmds = [base + ["-p", str(a.n_prompt), "-n", str(a.n_gen), "-d", ",".join(map(str, sorted(a.depths)))]]
    if a.prompt_from_empty:
        cmds.append(base + ["-p", str(a.prompt_from_empty), "-n", "0", "-d", "0"])
    return cmds


def run_llama_bench(cmd: list[str], log) -> list[dict]:
    log("llama.cpp: " + shlex.join(cmd))
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise SystemExit(f"llama-bench failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    return parse_llama_bench(p.stdout)


def parse_llama_bench(text: str) -> list[dict]:
    """llama-bench -o json: a list of tests, each with n_prompt, n_gen, n_depth, avg_ts."""
    start = text.find("[")
    if start < 0:
        raise SystemExit(f"no JSON list in llama-bench's output: {text[:500]!r}")
    tests = json.loads(text[start:])
    for t in tests:
        for k in ("n_prompt", "n_gen", "n_depth", "avg_ts"):
            if k not in t:
                raise SystemExit(f"llama-bench JSON test without {k!r}: {sorted(t)}")
    return tests


def llama_results(tests: list[dict], n_prompt: int, n_gen: int, prompt_from_empty: int) -> dict:
    """The same keys as run_pytactic's, from llama-bench's tests (pp and tg are separate)."""
    out: dict = {}
    for t in tests:
        samples = t.get("samples_ts") or [t["avg_ts"]]
        if t["n_gen"] == 0 and t["n_prompt"] == prompt_from_empty and t["n_depth"] == 0 and prompt_from_empty:
            out.setdefault(("prompt", 0), {"prefill": [], "decode": []})["prefill"] = samples
        if t["n_gen"] == 0 and t["n_prompt"] == n_prompt:
            out.setdefault(("pp+tg", t["n_depth"]), {"prefill": [], "decode": []})["prefill"] = samples
        elif t["n_prompt"] == 0 and t["n_gen"] == n_gen:
            out.setdefault(("pp+tg", t["n_depth"]), {"prefill": [], "decode": []})["decode"] = samples
    return out


# -- the table ---------------------------------------------------------------------------

def mean(xs):
    return float(np.mean(xs)) if xs else float("nan")


def mean_or_none(xs):
    return round(float(np.mean(xs)), 2) if xs else None


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def make_rows(a, ours: dict, theirs: dict, run: int) -> list[dict]:
    rows = []
    for key in sorted(set(ours) | set(theirs), key=lambda k: (k[0] == "prompt", k[1])):
        test, depth = key
        o, t = ours.get(key, {}), theirs.get(key, {})
        n_prompt = a.prompt_from_empty if test == "prompt" else a.n_prompt
        n_gen = 0 if test == "prompt" else a.n_gen
        row = {
            "model": a.name,
            "depth": depth,
            "test": "prompt-from-empty" if test == "prompt" else f"pp{n_prompt}+tg{n_gen}",
            "n_prompt": n_prompt,
            "n_gen": n_gen,
            "attention": a.attention,
            "pytactic_decode_tok_s": mean_or_none(o.get("decode")),
            "llamacpp_decode_tok_s": mean_or_none(t.get("decode")),
            "pytactic_prefill_tok_s": mean_or_none(o.get("prefill")),
            "llamacpp_prefill_tok_s": mean_or_none(t.get("prefill")),
        }
        row["decode_ratio"] = ratio(row["pytactic_decode_tok_s"], row["llamacpp_decode_tok_s"])
        row["prefill_ratio"] = ratio(row["pytactic_prefill_tok_s"], row["llamacpp_prefill_tok_s"])
        if a.fraction is not None:
            row["fraction"] = a.fraction
            # what the forced fraction bounds: each query head's clusters (the KV group's
            # union larger) with tactic_group_budget=0, or (the default) the KV group's union itself
            row["fraction_of"] = "query_head" if dict(a.cuda_option).get("tactic_group_budget") == 0 else "kv_group"
        if a.cuda_option:
            row["cuda_options"] = {k: int(v) for k, v in a.cuda_option}
        if "clustering_s" in o:  # Tactic: K-means after the fill, as a share of the fill
            row["clustering_s"] = round(o["clustering_s"], 4)
            row["clustering_share_of_fill"] = round(o["clustering_s"] / o["fill_s"], 4)
        row["samples"] = {f"{side}_{kind}": [round(float(x), 3) for x in d.get(kind, [])]
                          for side, d in (("pytactic", o), ("llamacpp", t)) for kind in ("prefill", "decode")
                          if d.get(kind)}
        row["run"] = run
        rows.append(row)
    return rows


def row_key(r: dict):
    return (r.get("model"), r.get("depth"), r.get("test"), r.get("attention"), r.get("fraction"),
            tuple(sorted(r.get("cuda_options", {}).items())))


def merge_rows(old_rows: list[dict], new_rows: list[dict]) -> list[dict]:
    """old_rows with new_rows added; a new row with an old row's key replaces the figures
    it has and keeps the old ones it lacks (one side measured now, the other before:
    "run" then lists both runs)."""
    by_key = {row_key(r): r for r in new_rows}
    out = []
    for r in old_rows:
        new = by_key.pop(row_key(r), None)
        if new is None:
            out.append(r)
            continue
        merged = {**r, **{k: v for k, v in new.items() if v is not None}}
        merged["samples"] = {**r.get("samples", {}), **new.get("samples", {})}
        kept_old = any(new.get(k) is None and r.get(k) is not None for k in FIGURES)
        merged["run"] = sorted({*_runs(r), *_runs(new)}) if kept_old else new["run"]
        merged["decode_ratio"] = ratio(merged["pytactic_decode_tok_s"], merged["llamacpp_decode_tok_s"])
        merged["prefill_ratio"] = ratio(merged["pytactic_prefill_tok_s"], merged["llamacpp_prefill_tok_s"])
        out.append(merged)
    return out + [r for r in new_rows if row_key(r) in by_key]


FIGURES = ("pytactic_decode_tok_s", "llamacpp_decode_tok_s", "pytactic_prefill_tok_s", "llamacpp_prefill_tok_s")


def _runs(r: dict) -> list[int]:
    run = r.get("run", [])
    return run if isinstance(run, list) else [run]


def print_table(rows: list[dict]) -> None:
    def f(x, spec):
        return format(x, spec) if x is not None else format("-", ">" + spec.split(".")[0])

    print(f"{'model':<28} {'depth':>7} {'test':<18} {'attn':<6} {'decode py':>10} {'decode lc':>10} {'x':>6} "
          f"{'prefill py':>11} {'prefill lc':>11} {'x':>6}")
    for r in rows:
        print(f"{r['model']:<28} {r['depth']:>7} {r['test']:<18} {r['attention']:<6} "
              f"{f(r['pytactic_decode_tok_s'], '10.2f')} {f(r['llamacpp_decode_tok_s'], '10.2f')} "
              f"{f(r['decode_ratio'], '6.2f')} {f(r['pytactic_prefill_tok_s'], '11.1f')} "
              f"{f(r['llamacpp_prefill_tok_s'], '11.1f')} {f(r['prefill_ratio'], '6.2f')}")


# -- the run record ------------------------------------------------------------------------

def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_name(device: str | None) -> str:
    if device not in (None, "cpu"):
        try:
            q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30)
            if q.returncode == 0 and q.stdout.strip():
                return "; ".join(line.strip() for line in q.stdout.strip().splitlines())
        except (OSError, subprocess.TimeoutExpired):
            pass
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {cpu}, {os.cpu_count()} cores"


def parse_kwarg(s: str):
    k, sep, v = s.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--model-kwarg wants KEY=VALUE, got {s!r}")
    try:
        return k, json.loads(v)
    except json.JSONDecodeError:
        return k, v


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="the GGUF both sides run")
    ap.add_argument("--name", default=None, help='the rows\' "model" (default: the file name without .gguf)')
    ap.add_argument("--device", default=None, help="passed to pytactic.Model(device=...) when given (cuda, cpu, auto)")
    ap.add_argument("--depths", default="0,4096,32768,131072", help="comma-separated cache depths")
    ap.add_argument("--n-prompt", type=int, default=512, help="pp at each depth (default 512)")
    ap.add_argument("--n-gen", type=int, default=128, help="tg at each depth (default 128)")
    ap.add_argument("--prompt-from-empty", type=int, default=32768, help="one prompt from depth 0 (0: none)")
    ap.add_argument("--reps", type=int, default=2, help="repetitions (llama-bench -r)")
    ap.add_argument("--n-batch", type=int, default=512, help="pytactic's prefill batch (Model n_batch)")
    ap.add_argument("--n-threads", type=int, default=None, help="pytactic's CPU threads")
    ap.add_argument("--fill-chunk", type=int, default=8192, help="tokens per eval call when filling a depth")
    ap.add_argument("--attention", default="full", help="pytactic attention (Model attention=...)")
    ap.add_argument("--model-kwarg", action="append", type=parse_kwarg, default=[], metavar="KEY=VALUE",
                    help="more Model arguments (VALUE parsed as JSON when it is); a key with 'fraction' in "
                         "its name is recorded as the rows' fraction")
    ap.add_argument("--cuda-option", action="append", type=parse_kwarg, default=[], metavar="NAME=VALUE",
                    help="tactic_cuda_set_option before pytactic runs (e.g. matvec_q8=0: f32 activations)")
    ap.add_argument("--seed", type=int, default=0, help="pytactic's random token ids")
    ap.add_argument("--llama-bench", default=None, help="path of llama-bench (omit: pytactic only)")
    ap.add_argument("--ngl", type=int, default=99, help="llama-bench -ngl")
    ap.add_argument("--llama-bench-args", default="", help="more llama-bench arguments, one string")
    ap.add_argument("--llamacpp-json", default=None,
                    help="use this saved llama-bench -o json output (a file holding one or more lists) instead "
                         "of running llama-bench")
    ap.add_argument("--llamacpp-first", action="store_true", help="run llama-bench before pytactic")
    ap.add_argument("--skip-pytactic", action="store_true")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help=f"write the JSON here afresh (default {DEFAULT_OUT})")
    ap.add_argument("--rows-to", default=None, help="append the rows to this existing JSON instead of --out")
    a = ap.parse_args(argv)
    a.depths = [int(d) for d in a.depths.split(",") if d.strip()]
    a.name = a.name or Path(a.model).name.removesuffix(".gguf")
    a.model_kwargs = dict(a.model_kwarg)
    fractions = [v for k, v in a.model_kwargs.items() if "fraction" in k]
    a.fraction = fractions[0] if fractions else None
    if not Path(a.model).is_file():
        raise SystemExit(f"no such model file: {a.model}")
    if a.cuda_option:
        from pytactic._native import lib

        for name, value in a.cuda_option:
            if lib.tactic_cuda_set_option(name.encode(), int(value)) != 0:
                raise SystemExit(f"--cuda-option {name}={value} refused")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    ours: dict = {}
    theirs: dict = {}
    lc_cmds = llama_bench_commands(a) if a.llama_bench else []

    def llama_side():
        tests = []
        if a.llamacpp_json:
            text = Path(a.llamacpp_json).read_text()
            dec, pos = json.JSONDecoder(), 0
            while (pos := text.find("[", pos)) >= 0:
                chunk, end = dec.raw_decode(text, pos)
                tests += chunk
                pos = end
        for cmd in lc_cmds:
            tests += run_llama_bench(cmd, log)
        depths = set(a.depths)
        # a saved JSON may hold more depths than this run asks for
        theirs.update({k: v for k, v in llama_results(tests, a.n_prompt, a.n_gen, a.prompt_from_empty).items()
                       if k[0] == "prompt" or k[1] in depths})
        return tests

    tests = []
    if a.llamacpp_first:
        tests = llama_side()
    if not a.skip_pytactic:
        ours = run_pytactic(a, log)
    if not a.llamacpp_first:
        tests = llama_side()

    path = Path(a.rows_to or a.out)
    doc = json.loads(path.read_text()) if a.rows_to and path.is_file() else {}
    runs = doc.get("runs", [])
    lc_build = next((f"{t.get('build_commit')} ({t.get('build_number')})" for t in tests if "build_commit" in t), None)
    record = {
        "gpu": device_name(a.device),
        "commit": git_commit(),
        "command": shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(["gpu_e2e.py", *argv]),
        "llamacpp_commands": [shlex.join(c) for c in lc_cmds],
        "llamacpp_build": lc_build,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "pytactic": {"device": a.device, "n_batch": a.n_batch, "n_threads": a.n_threads, **a.model_kwargs},
    }
    runs.append(record)
    rows = make_rows(a, ours, theirs, len(runs) - 1)
    doc = {"gpu": doc.get("gpu", record["gpu"]), "commit": doc.get("commit", record["commit"]),
           "command": doc.get("command", record["command"]), "runs": runs,
           "rows": merge_rows(doc.get("rows", []), rows)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print_table(rows)
    log(f"wrote {len(rows)} rows to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
