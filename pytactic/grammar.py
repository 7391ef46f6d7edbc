"""Structured output: constrain generation to a JSON schema, a GBNF grammar (the format
of llama.cpp's grammars/*.gbnf), a Lark grammar or a regex.

The grammar engine is llguidance (pip install "pytactic[grammar]"; docs/STRUCTURED.md
says why this one): it computes, per step, the set of tokens that keep the text inside
the grammar, as a bitmask over the vocabulary. The native sampler removes the other
tokens before penalties, top-k/p, min-p and temperature (tactic_sampler_sample_masked),
and end-of-generation tokens are allowed only where the grammar accepts the text.

    g = Grammar.from_json_schema({"type": "object", "properties": {...}})
    text = model.generate(prompt, grammar=g)
    model.chat(messages, response_format={"type": "json_object"})
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Tuple, Union

from ._native import check, ffi, lib
from .errors import GrammarError
from .grammar_vocab import token_bytes

__all__ = ["Grammar", "GrammarError", "GrammarMatcher", "grammar_from_arg", "grammar_from_response_format"]

# JSON as people read it ({"a": 1, "b": [2, 3]}) and nothing else: free whitespace
# lets a small model wander into endless newlines. A schema's "x-guidance" overrides.
_JSON_DEFAULTS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


def _llg():
    try:
        import llguidance
    except ImportError as e:  # the optional extra is not installed
        raise ImportError(
            "structured output needs the llguidance package: pip install \"pytactic[grammar]\" "
            "(or pip install llguidance)"
        ) from e
    return llguidance


class Grammar:
    """A compiled-and-checked grammar. Build one with from_json_schema, from_gbnf,
    from_lark, from_regex or json_object; every constructor raises GrammarError (a
    ValueError) for a malformed input, before any token is generated."""

    def __init__(self, spec: str, kind: str, source: Any):
        self._spec = spec  # llguidance's grammar description
        self.kind = kind
        self.source = source

    @classmethod
    def _checked(cls, spec: str, kind: str, source: Any) -> "Grammar":
        llg = _llg()
        is_error, messages = llg.LLMatcher.validate_grammar_with_warnings(spec)
        if is_error:
            raise GrammarError(f"invalid {kind}: {messages[0] if messages else 'rejected by the grammar engine'}")
        return cls(spec, kind, source)

    @classmethod
    def from_json_schema(cls, schema: Union[str, Dict[str, Any], bool], *, bound_numbers: bool = True) -> "Grammar":
        """JSON values that validate against a JSON schema (dict or JSON text).

        bound_numbers: numbers get at most 15 integer digits and 10 decimals unless the
        schema bounds them itself (as llama.cpp's JSON-schema grammars bound them to 16
        digits): a small model otherwise can write digits until max_tokens. This only
        narrows the schema, so every output still validates against the one given."""
        llg = _llg()
        if isinstance(schema, (str, bytes)):
            try:
                schema = json.loads(schema)
            except ValueError as e:
                raise GrammarError(f"the JSON schema is not valid JSON: {e}") from None
        if not isinstance(schema, (dict, bool)):
            raise GrammarError(f"a JSON schema must be an object (dict) or a boolean, got {type(schema).__name__}")
        if schema is False:
            raise GrammarError("the JSON schema `false` accepts no value at all")
        engine_schema = _bounded_numbers(schema) if bound_numbers else schema
        try:
            spec = llg.LLMatcher.grammar_from_json_schema(engine_schema, defaults=_JSON_DEFAULTS)
        except (ValueError, TypeError) as e:
            raise GrammarError(f"invalid JSON schema: {e}") from None
        return cls._checked(spec, "JSON schema", schema)

    @classmethod
    def json_object(cls) -> "Grammar":
        """Any JSON object (OpenAI's response_format {"type": "json_object"})."""
        return cls.from_json_schema({"type": "object"})

    @classmethod
    def from_gbnf(cls, text: str) -> "Grammar":
        """A GBNF grammar (llama.cpp's grammars/*.gbnf; the start rule is `root`)."""
        if not isinstance(text, str):
            raise GrammarError(f"a GBNF grammar must be a str, got {type(text).__name__}")
        if not text.strip():
            raise GrammarError("the GBNF grammar is empty")
        _llg()  # a clear ImportError first if the extra is missing
        from llguidance.gbnf_to_lark import any_to_lark

        try:
            lark = any_to_lark(text)
        except Exception as e:  # the converter raises its own error types
            raise GrammarError(f"invalid GBNF grammar: {e}") from None
        return cls._checked(_llg().LLMatcher.grammar_from_lark(lark), "GBNF grammar", text)

    @classmethod
    def from_lark(cls, text: str) -> "Grammar":
        """A grammar in llguidance's Lark dialect (start rule `start`)."""
        if not isinstance(text, str) or not text.strip():
            raise GrammarError("a Lark grammar must be a non-empty str")
        return cls._checked(_llg().LLMatcher.grammar_from_lark(text), "Lark grammar", text)

    @classmethod
    def from_regex(cls, pattern: str) -> "Grammar":
        """Texts the regex matches in full (Rust regex syntax: no look-around, no
        back-references)."""
        if not isinstance(pattern, str):
            raise GrammarError(f"a regex must be a str, got {type(pattern).__name__}")
        return cls._checked(_llg().LLMatcher.grammar_from_regex(pattern), "regex", pattern)

    def __repr__(self) -> str:
        src = self.source if isinstance(self.source, str) else json.dumps(self.source)
        return f"<pytactic.Grammar {self.kind}: {src[:60]!r}>"


_INT_LIMIT = 10**15 - 1  # 15 digits
_DECIMALS = 1e-10  # 10 decimals (llguidance takes multipleOf down to 1e-10)
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SUBSCHEMA_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
                  "unevaluatedItems", "unevaluatedProperties", "additionalItems")


def _bounded_numbers(node):
    """A copy of a schema where every number/integer subschema without bounds of its
    own gets them (see Grammar.from_json_schema's bound_numbers)."""
    if isinstance(node, list):
        return [_bounded_numbers(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = dict(node)
    for k in _SUBSCHEMA_LISTS:
        if isinstance(out.get(k), list):
            out[k] = [_bounded_numbers(x) for x in out[k]]
    for k in _SUBSCHEMA_MAPS:
        if isinstance(out.get(k), dict):
            out[k] = {name: _bounded_numbers(x) for name, x in out[k].items()}
    for k in _SUBSCHEMA_ONE:
        if isinstance(out.get(k), (dict, list)):
            out[k] = _bounded_numbers(out[k])
    types = out.get("type")
    types = [types] if isinstance(types, str) else types if isinstance(types, list) else []
    if "number" in types or "integer" in types:
        if "minimum" not in out and "exclusiveMinimum" not in out:
            out["minimum"] = -_INT_LIMIT
        if "maximum" not in out and "exclusiveMaximum" not in out:
            out["maximum"] = _INT_LIMIT
        if "number" in types and "integer" not in types and "multipleOf" not in out:
            out["multipleOf"] = _DECIMALS
    return out


def grammar_from_arg(grammar) -> Optional[Grammar]:
    """generate()'s grammar= argument: None, a Grammar, or GBNF text."""
    if grammar is None or isinstance(grammar, Grammar):
        return grammar
    if isinstance(grammar, str):
        return Grammar.from_gbnf(grammar)
    raise GrammarError(f"grammar must be a pytactic.Grammar or a GBNF string, got {type(grammar).__name__}")


def grammar_from_response_format(response_format) -> Optional[Grammar]:
    """OpenAI's response_format: {"type": "text"}, {"type": "json_object"} (llama-cpp-python
    also reads a "schema" there), or {"type": "json_schema", "json_schema": {"name": ...,
    "schema": {...}}}."""
    if response_format is None:
        return None
    if not isinstance(response_format, dict) or "type" not in response_format:
        raise GrammarError('response_format must be a dict with a "type" ("text", "json_object" or "json_schema")')
    kind = response_format["type"]
    if kind == "text":
        return None
    if kind == "json_object":
        schema = response_format.get("schema")
        return Grammar.from_json_schema(schema) if schema is not None else Grammar.json_object()
    if kind == "json_schema":
        js = response_format.get("json_schema")
        if not isinstance(js, dict) or "schema" not in js:
            raise GrammarError('response_format {"type": "json_schema"} needs "json_schema": {"name": ..., "schema": {...}}')
        return Grammar.from_json_schema(js["schema"])
    raise GrammarError(f'response_format type must be "text", "json_object" or "json_schema", got {kind!r}')


# -- the engine's view of a model's vocabulary -----------------------------------------

class EngineTokenizer:
    """llguidance's tokenizer built from a GGUF vocabulary: every token's bytes, the
    special tokens (marked with a leading 0xFF, llguidance's convention) and the
    end-of-generation ids (the model's). Tokenizing (llguidance asks for it now and
    then) goes through a vocab-only native model of its own, so it never waits on the
    Model's context."""

    def __init__(self, model):
        llg = _llg()
        tb = token_bytes(model.path)
        self._vocab = _VocabOnly(model.path)
        unique = tb.hide_duplicates(self._vocab.tokenize)
        tokens = [b"\xff" + t if s else t for t, s in zip(unique, tb.special)]
        self.token_bytes = tb
        self.n_vocab = max(model.n_vocab, len(tokens))
        # End-of-generation tokens are control tokens: only those need asking.
        special = [i for i, s in enumerate(tb.special) if s]
        self.eog_ids = sorted(i for i in set(special) | set(model._eot_ids) if model.is_eog(i))
        if not self.eog_ids:
            raise GrammarError("the model has no end-of-generation token: a grammar could never end")
        vocab = self._vocab

        class _Wrapped:  # what llguidance.TokenizerWrapper reads
            eos_token_id = self.eog_ids[0]
            bos_token_id = None
            special_token_ids = special

            def __call__(self, data):
                return vocab.tokenize(data)

        _Wrapped.tokens = tokens
        self.ll = llg.LLTokenizer(llg.TokenizerWrapper(_Wrapped()), n_vocab=self.n_vocab, eos_token=self.eog_ids)


class _VocabOnly:
    def __init__(self, path: str):
        params = lib.tactic_model_default_params()
        params.vocab_only = 1
        out = ffi.new("tactic_model **")
        check(lib.tactic_model_load(os.fspath(path).encode(), ffi.new("tactic_model_params *", params), out))
        self._m = ffi.gc(out[0], lib.tactic_model_free)
        self._lock = threading.Lock()

    def tokenize(self, data) -> List[int]:
        if isinstance(data, str):
            data = data.encode("utf-8")
        n = ffi.new("int32_t *")
        cap = len(data) + 8
        with self._lock:
            buf = ffi.new("int32_t[]", cap)
            check(lib.tactic_tokenize(self._m, data, len(data), 0, 0, buf, cap, n), "tokenize")
            return list(buf[0 : n[0]])


_tokenizers: Dict[tuple, EngineTokenizer] = {}
_tokenizers_lock = threading.Lock()


def engine_tokenizer(model) -> EngineTokenizer:
    """The model's EngineTokenizer, built once per file (262K tokens take seconds)."""
    st = os.stat(model.path)
    key = (os.path.realpath(model.path), st.st_size, st.st_mtime_ns, model.n_vocab)
    with _tokenizers_lock:
        tok = _tokenizers.get(key)
        if tok is None:
            tok = _tokenizers[key] = EngineTokenizer(model)
        return tok


# -- one generation's mask provider -----------------------------------------------------

_executor: Optional[ThreadPoolExecutor] = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _tokenizers_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pytactic-grammar")
        return _executor


# Matchers kept warm between generations, per (grammar, tokenizer): a matcher builds its
# lexer's states lazily, so the first generation through a grammar pays for them (single
# masks of several ms, as long as a GPU decode step or more), and a matcher reset to its
# start keeps them. A grammar given again as the same schema or text (a new Grammar
# object, e.g. each request's response_format) finds the same matchers.
_POOL_GRAMMARS = 16   # grammars kept warm, least recently used dropped first
_POOL_PER_GRAMMAR = 4  # matchers per grammar (generations through it at the same time)
_warm_lock = threading.Lock()
_warm: "OrderedDict[Tuple[str, int], Tuple[EngineTokenizer, list]]" = OrderedDict()


def _take_matcher(spec: str, tokenizer: EngineTokenizer):
    with _warm_lock:
        entry = _warm.get((spec, id(tokenizer)))
        if entry is None or entry[0] is not tokenizer or not entry[1]:
            return None
        _warm.move_to_end((spec, id(tokenizer)))
        return entry[1].pop()


def _give_back(spec: str, tokenizer: EngineTokenizer, matcher) -> None:
    if matcher.is_error() or not matcher.reset():
        return
    key = (spec, id(tokenizer))
    with _warm_lock:
        entry = _warm.get(key)
        if entry is None or entry[0] is not tokenizer:
            entry = _warm[key] = (tokenizer, [])
        _warm.move_to_end(key)
        if len(entry[1]) < _POOL_PER_GRAMMAR:
            entry[1].append(matcher)
        while len(_warm) > _POOL_GRAMMARS:
            _warm.popitem(last=False)


class GrammarMatcher:
    """Follows one generation through a grammar and gives the native sampler the mask
    of allowed tokens. The next mask is computed where Model._tokens says: prefetch() on
    a worker thread beside a CPU forward pass (llguidance releases the GIL),
    compute_now() on the caller's thread while a GPU runs the step, or by mask_ptr()
    itself when neither ran."""

    def __init__(self, grammar: Grammar, tokenizer: EngineTokenizer):
        import numpy as np

        llg = _llg()
        self._spec, self._tokenizer = grammar._spec, tokenizer
        self._m = _take_matcher(grammar._spec, tokenizer) or llg.LLMatcher(tokenizer.ll, grammar._spec, log_level=0)
        if self._m.is_error():
            raise GrammarError(f"invalid {grammar.kind}: {self._m.get_error()}")
        self._mask = np.zeros((tokenizer.n_vocab + 31) // 32, dtype=np.uint32)
        self._ptr = ffi.cast("const uint32_t *", ffi.from_buffer(self._mask))
        self._addr = self._mask.ctypes.data
        self._pending = None
        self._ready = False  # compute_now() left the next mask in _mask
        self._done = False
        self.mask_s = 0.0  # time spent computing masks (on whatever thread)
        self.n_masks = 0

    def _compute(self) -> None:
        import time

        t0 = time.perf_counter()
        self._m.unsafe_compute_mask_ptr(self._addr, self._mask.nbytes)
        self.mask_s += time.perf_counter() - t0
        self.n_masks += 1

    def prefetch(self) -> None:
        if self._pending is None:
            self._pending = _pool().submit(self._compute)

    def compute_now(self) -> None:
        """Computes the next mask on this thread (while a GPU runs the step: no thread
        hand-off to pay); mask_ptr() then returns it."""
        self._settle()
        self._compute()
        self._ready = True

    def mask_ptr(self):
        """The mask for the next token (computed now unless prefetched or computed)."""
        if self._pending is not None:
            self._settle()
        elif not self._ready:
            self._compute()
        self._ready = False
        if self._m.is_error():
            raise GrammarError(f"the grammar engine failed: {self._m.get_error()}")
        return self._ptr

    def _settle(self) -> None:
        # The matcher is borrowed by the worker while it computes a mask: every other
        # use waits for that first.
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def accept(self, token: int) -> None:
        self._settle()
        self._ready = False
        if not self._m.consume_token(int(token)):
            raise GrammarError(f"the grammar engine rejected token {token}: {self._m.get_error()}")
        self._done = self._m.is_stopped() and not self._m.is_error()

    def is_accepting(self) -> bool:
        self._settle()
        return self._m.is_accepting()

    def done(self) -> bool:
        """The text is complete and nothing may follow but end-of-generation (as of the
        last accept(); safe while a mask is being computed)."""
        return self._done

    def close(self) -> None:
        """Ends the generation: the matcher goes back to the pool, reset (once only)."""
        self._settle()
        m, self._m = self._m, None
        if m is not None:
            _give_back(self._spec, self._tokenizer, m)


def matcher_for(model, grammar=None, response_format=None) -> Optional[GrammarMatcher]:
    """The GrammarMatcher of one generation from generate()'s grammar= or chat()'s
    response_format= (not both)."""
    g = grammar_from_arg(grammar)
    rf = grammar_from_response_format(response_format)
    if g is not None and rf is not None:
        raise GrammarError("pass grammar= or response_format=, not both")
    g = g if g is not None else rf
    if g is None:
        return None
    model._c()  # a vocab-only or closed model cannot generate: say so first
    return GrammarMatcher(g, engine_tokenizer(model))
