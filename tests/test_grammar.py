"""Structured output on Gemma 3 270M: outputs of JSON schemas validate with the
`jsonschema` package, outputs of GBNF grammars parse with `lark` (an independent
Earley parser, on an equivalent grammar in tests/data/grammars/*.lark), streaming
gives the same text, max_tokens mid-grammar ends with "length", end-of-generation
is allowed only where the grammar accepts, and malformed input is a GrammarError
before any token. (scripts/grammar_validity.py runs the full 20 x 5 table.)"""

import json
from pathlib import Path

import numpy as np
import pytest

llguidance = pytest.importorskip("llguidance", reason="the grammar extra (llguidance) is not installed")
jsonschema = pytest.importorskip("jsonschema")
lark = pytest.importorskip("lark")

import pytactic  # noqa: E402
from pytactic import Grammar, GrammarError  # noqa: E402
from pytactic.grammar import GrammarMatcher, engine_tokenizer  # noqa: E402

GRAMMARS = Path(__file__).resolve().parent / "data" / "grammars"


@pytest.fixture(scope="module")
def model(gemma_path):
    m = pytactic.Model(gemma_path, n_ctx=1024, n_threads=2)
    yield m
    m.close()


SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string", "maxLength": 40},
                                      "age": {"type": "integer", "minimum": 0, "maximum": 120}},
     "required": ["name", "age"], "additionalProperties": False},
    {"type": "object", "properties": {"colors": {"type": "array", "items": {"enum": ["red", "green", "blue"]},
                                                 "minItems": 1, "maxItems": 3}},
     "required": ["colors"], "additionalProperties": False},
    {"type": "object", "properties": {"city": {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 30}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
        "required": ["name", "zip"], "additionalProperties": False}},
     "required": ["city"], "additionalProperties": False},
    {"type": "object", "properties": {"score": {"type": "number", "minimum": 0, "maximum": 10},
                                      "ok": {"type": "boolean"}},
     "required": ["score", "ok"], "additionalProperties": False},
]


@pytest.mark.parametrize("i", range(len(SCHEMAS)))
def test_json_schema_outputs_validate(model, i):
    schema = SCHEMAS[i]
    g = Grammar.from_json_schema(schema)
    for seed in (1, 2):
        out = model.generate("Write a JSON object about a person or place:\n", grammar=g, max_tokens=96,
                             temperature=0.8, seed=seed)
        assert model.last_stats.finish_reason == "stop", out
        jsonschema.validate(json.loads(out), schema)


@pytest.mark.parametrize("name,prompt", [
    ("json", "A JSON object describing a cat:\n"),
    ("json_arr", "A JSON list of two books:\n"),
    ("arithmetic", "An arithmetic expression: "),
    ("list", "Shopping list:\n"),
    ("chess", "A chess opening: "),
])
def test_gbnf_files_give_only_accepted_strings(model, name, prompt):
    g = Grammar.from_gbnf((GRAMMARS / f"{name}.gbnf").read_text())
    parser = lark.Lark((GRAMMARS / f"{name}.lark").read_text(), parser="earley", lexer="dynamic")
    stopped = 0
    for seed in (1, 2, 3):
        out = model.generate(prompt, grammar=g, max_tokens=128, temperature=0.8, seed=seed)
        if model.last_stats.finish_reason == "stop":
            stopped += 1
            parser.parse(out)  # raises if lark does not accept the text
    assert stopped >= 1


def test_gbnf_string_and_regex(model):
    out = model.generate("Is the sky blue? Answer:", grammar='root ::= " yes" | " no"', temperature=0.0)
    assert out in (" yes", " no") and model.last_stats.finish_reason == "stop"
    g = Grammar.from_regex(r"[0-9]{3}-[A-Z]{2}")
    for seed in range(3):
        out = model.generate("Code:", grammar=g, temperature=1.0, seed=seed, max_tokens=20)
        import re

        assert re.fullmatch(r"[0-9]{3}-[A-Z]{2}", out), out


def test_stream_gives_the_same_text(model):
    g = Grammar.from_json_schema(SCHEMAS[0])
    # Both from an empty cache: on a GPU a prompt read as a batch and its last token read
    # again alone (prefix reuse) give logits that differ in the last bits, and sampling
    # can follow them (the CPU's are the same bytes: tests/test_batch_independence.py).
    model.reset()
    whole = model.generate("Person:", grammar=g, max_tokens=64, seed=7)
    model.reset()
    pieces = list(model.generate("Person:", grammar=g, max_tokens=64, seed=7, stream=True))
    assert "".join(pieces) == whole and len(pieces) > 1


def test_chat_response_format(model):
    # Whether this small base model closes its object within max_tokens depends on the
    # sampled path (and so on the CPU's kernels): every object it finishes must parse as
    # a dict, and some of six seeds must finish one.
    short = [{"role": "user", "content": "Give the name and age of a dog as a short JSON object."}]
    finished = []
    for seed in range(3, 9):
        r = model.chat(short, response_format={"type": "json_object"}, max_tokens=128, seed=seed)
        if r["choices"][0]["finish_reason"] == "stop":
            finished.append(json.loads(r["choices"][0]["message"]["content"]))
    assert finished and all(isinstance(obj, dict) for obj in finished)
    msgs = [{"role": "user", "content": "Describe a dog as JSON."}]
    schema = SCHEMAS[1]
    rf = {"type": "json_schema", "json_schema": {"name": "colors", "schema": schema}}
    chunks = list(model.chat(msgs, response_format=rf, max_tokens=64, seed=4, stream=True))
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    jsonschema.validate(json.loads(text), schema)
    # {"type": "text"} is no constraint at all
    r = model.chat(msgs, response_format={"type": "text"}, max_tokens=4, seed=3)
    assert r["choices"][0]["finish_reason"] == "length"


def test_create_completion_grammar(model):
    r = model.create_completion("Answer:", grammar='root ::= " maybe"', max_tokens=8, temperature=0)
    assert r["choices"][0]["text"] == " maybe" and r["choices"][0]["finish_reason"] == "stop"


def test_max_tokens_mid_grammar_is_length(model):
    g = Grammar.from_json_schema(SCHEMAS[2])
    out = model.generate("Place:", grammar=g, max_tokens=3, seed=1)
    assert model.last_stats.finish_reason == "length"
    with pytest.raises(ValueError):
        json.loads(out)  # cut short, and said so: never an invalid "stop"
    # Two sampled tokens may already close an object ("{" "}"): then, and only then, "stop".
    for seed in range(4):
        r = model.chat([{"role": "user", "content": "JSON"}], response_format={"type": "json_object"},
                       max_tokens=2, seed=seed)
        text, finish = r["choices"][0]["message"]["content"], r["choices"][0]["finish_reason"]
        if finish == "stop":
            assert isinstance(json.loads(text), dict), text
        else:
            assert finish == "length"
            with pytest.raises(ValueError):
                json.loads(text)


def test_end_of_generation_only_where_the_grammar_accepts(model):
    tok = engine_tokenizer(model)
    eog = tok.eog_ids
    assert 1 in eog and 106 in eog  # Gemma's <eos> and <end_of_turn>
    m = GrammarMatcher(Grammar.from_regex("[0-9]{2}"), tok)

    def allowed():
        ptr = m.mask_ptr()
        words = np.frombuffer(pytactic._native.ffi.buffer(ptr, 4 * ((tok.n_vocab + 31) // 32)), np.uint32)
        return lambda t: bool((words[t >> 5] >> (t & 31)) & 1)

    ids = model.tokenize("42", add_bos=False)
    for i, t in enumerate(ids):
        a = allowed()
        assert a(t) and not any(a(e) for e in eog)
        m.accept(t)
    a = allowed()
    assert all(a(e) for e in eog)
    assert not a(model.tokenize("7", add_bos=False)[0])  # the regex is complete
    m.close()


@pytest.mark.parametrize("kwargs", [
    dict(grammar="root ::= foo"),
    dict(grammar="root ::= [a-"),
    dict(grammar=Grammar),  # not a grammar
    dict(grammar=42),
])
def test_bad_grammar_raises_before_any_token(model, kwargs):
    model.reset()
    for stream in (False, True):
        with pytest.raises(GrammarError):
            model.generate("Hello", stream=stream, **kwargs)
    assert model.cached_tokens == []  # nothing was evaluated


@pytest.mark.parametrize("rf", [
    {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strin"}}},
    {"type": "json_schema", "json_schema": {"name": "x"}},
    {"type": "json_object", "schema": {"type": "integer", "minimum": 3, "maximum": 1}},
    {"type": "yaml"},
])
def test_bad_response_format_raises(model, rf):
    with pytest.raises(GrammarError):
        model.chat([{"role": "user", "content": "hi"}], response_format=rf, stream=True)
    assert issubclass(GrammarError, ValueError)


def test_grammar_and_response_format_together_is_an_error(model):
    with pytest.raises(GrammarError, match="not both"):
        model.chat([{"role": "user", "content": "hi"}], grammar='root ::= "a"',
                   response_format={"type": "json_object"})


def test_numbers_bounded_only_where_the_schema_leaves_them_open():
    from pytactic.grammar import _bounded_numbers

    schema = {"type": "object", "properties": {
        "a": {"type": "number"},
        "b": {"type": "integer", "minimum": 3},
        "c": {"type": ["number", "null"], "exclusiveMaximum": 5, "multipleOf": 0.5},
        "d": {"anyOf": [{"$ref": "#/$defs/n"}, {"type": "string"}]},
        "e": {"type": "array", "items": {"type": "number", "maximum": 2}}},
        "$defs": {"n": {"type": "integer"}}}
    before = json.dumps(schema)
    out = _bounded_numbers(schema)
    assert json.dumps(schema) == before  # the caller's schema is not touched
    p = out["properties"]
    assert p["a"] == {"type": "number", "minimum": -(10**15 - 1), "maximum": 10**15 - 1, "multipleOf": 1e-10}
    assert p["b"] == {"type": "integer", "minimum": 3, "maximum": 10**15 - 1}
    assert p["c"] == {"type": ["number", "null"], "exclusiveMaximum": 5, "multipleOf": 0.5, "minimum": -(10**15 - 1)}
    assert out["$defs"]["n"] == {"type": "integer", "minimum": -(10**15 - 1), "maximum": 10**15 - 1}
    assert p["e"]["items"]["maximum"] == 2 and p["e"]["items"]["multipleOf"] == 1e-10
    # the bounds only narrow: anything the bounded schema accepts, the original does
    for value in ({"a": 0.5, "b": 4, "c": 4.5, "d": 7, "e": [1.25]}, {"a": -12345.0000000001}):
        jsonschema.validate(value, out)
        jsonschema.validate(value, schema)


def test_a_finished_grammar_stops_without_another_forward_pass(model):
    # " maybe" is the whole language: once written, generation ends ("stop") at once,
    # also when that is exactly max_tokens.
    n = len(model.tokenize(" maybe", add_bos=False))
    out = model.generate("Answer:", grammar='root ::= " maybe"', max_tokens=n, temperature=0)
    assert out == " maybe" and model.last_stats.finish_reason == "stop"
    assert model.last_stats.n_generated == n


def test_warm_matchers_start_from_the_grammar_start(model):
    """Matchers are kept warm between generations (pytactic.grammar._warm) and reset when
    given back: a generation after one cut mid-grammar by max_tokens, through a new
    Grammar object of the same schema, makes the same tokens as one through a fresh
    matcher, and its output validates."""
    import pytactic.grammar as pg

    schema = SCHEMAS[2]
    prompt = "Write a JSON object about a place:\n"
    kw = dict(max_tokens=96, temperature=0.8, seed=5)
    with pg._warm_lock:
        pg._warm.clear()
    model.reset()  # each compared generation from an empty cache (see test_stream_gives_the_same_text)
    model.generate(prompt, grammar=Grammar.from_json_schema(schema), **kw)
    fresh = list(model.last_stats.tokens)
    model.generate(prompt, grammar=Grammar.from_json_schema(schema), max_tokens=7, temperature=0.8, seed=6)
    assert model.last_stats.finish_reason == "length"  # its matcher went back mid-object
    assert any(k[0] == Grammar.from_json_schema(schema)._spec for k in pg._warm), "the matcher was not kept"
    model.reset()
    out = model.generate(prompt, grammar=Grammar.from_json_schema(schema), **kw)
    assert list(model.last_stats.tokens) == fresh
    jsonschema.validate(json.loads(out), schema)


def test_the_three_mask_paths_give_the_same_text(model, monkeypatch):
    """Where the next mask is computed (a worker thread beside the forward pass; this
    thread before sampling; this thread between tactic_eval_async and tactic_synchronize,
    the GPU's path) changes nothing in what is generated: the same tokens for a schema and
    a GBNF grammar (on a CPU model the async native call evaluates at once; on a GPU all
    three paths run on the GPU)."""
    schema = SCHEMAS[0]
    prompt = "Write a JSON object about a person:\n"
    device = model.device
    for g in (Grammar.from_json_schema(schema), Grammar.from_gbnf((GRAMMARS / "list.gbnf").read_text())):
        runs = []
        for dev, spare in (("cpu", True), ("cpu", False), ("cuda", False)):
            monkeypatch.setattr(model, "device", dev)
            monkeypatch.setattr(model, "_spare_core", spare)
            model.reset()  # each from an empty cache (see test_stream_gives_the_same_text)
            text = model.generate(prompt, grammar=g, max_tokens=48, temperature=0.8, seed=11)
            runs.append((list(model.last_stats.tokens), text))
        monkeypatch.setattr(model, "device", device)
        assert runs[0] == runs[1] == runs[2]
