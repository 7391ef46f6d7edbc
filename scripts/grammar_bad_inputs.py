"""Malformed JSON schemas, GBNF grammars, regexes and response_format values, and the
error each gets (docs/STRUCTURED.md's table). Needs no model: every check happens when
the Grammar is built, before anything is evaluated.

    python scripts/grammar_bad_inputs.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CASES = [
    ("json_schema", '{"type": "object",'),
    ("json_schema", [1, 2]),
    ("json_schema", False),
    ("json_schema", {"type": "strin"}),
    ("json_schema", {"type": "integer", "minimum": 5, "maximum": 1}),
    ("json_schema", {"type": "array", "minItems": 3, "maxItems": 1}),
    ("json_schema", {"type": "string", "pattern": "([a-z]"}),
    ("json_schema", {"type": "string", "pattern": "(?=a)b"}),
    ("json_schema", {"$ref": "#/$defs/missing"}),
    ("json_schema", {"type": "object", "properties": {"a": 5}}),
    ("json_schema", {"type": "string", "format": "email-ish"}),
    ("json_schema", {"enum": []}),
    ("json_schema", {"type": "object", "required": ["a"], "properties": {"a": False}}),
    ("json_schema", {"allOf": [{"type": "string"}, {"type": "integer"}]}),
    ("gbnf", "root ::= foo"),
    ("gbnf", 'rot ::= "a"'),
    ("gbnf", "root ::= [a-"),
    ("gbnf", 'root ::= "unterminated'),
    ("gbnf", 'root ::= "a"{2,1}'),
    ("gbnf", ""),
    ("regex", "[a-"),
    ("regex", "(?<=a)b"),
    ("regex", r"(a)\1"),
    ("grammar", 42),
    ("response_format", {"type": "json_schema"}),
    ("response_format", {"type": "xml"}),
    ("response_format", "json"),
]


def main() -> int:
    from pytactic.errors import GrammarError
    from pytactic.grammar import Grammar, grammar_from_arg, grammar_from_response_format

    build = {"json_schema": Grammar.from_json_schema, "gbnf": Grammar.from_gbnf, "regex": Grammar.from_regex,
             "grammar": grammar_from_arg, "response_format": grammar_from_response_format}
    print("| kind | input | error | message |")
    print("|---|---|---|---|")
    missed = 0
    for kind, src in CASES:
        shown = src if isinstance(src, str) else json.dumps(src)
        try:
            build[kind](src)
            err, msg = "(accepted)", ""
            missed += 1
        except GrammarError as e:
            err, msg = type(e).__name__, " ".join(str(e).split())
        print(f"| {kind} | `{shown}` | {err} | {msg.replace('|', '/')[:160]} |")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
