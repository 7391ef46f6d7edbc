"""Validation of /v1/completions and /v1/chat/completions bodies: every field people
send is checked for type and range here, so a bad request is a 400 that names the
field, and the worker threads only ever see clean values."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, List, Optional, Union

from .errors import bad_request

_ROLES = {"system", "developer", "user", "assistant", "tool"}
_MAX_STOPS = 4


@dataclass
class GenerationRequest:
    kind: str  # "chat" or "completion"
    model: Optional[str]
    messages: Optional[List[dict]] = None  # chat: [{"role", "content": str}]
    prompt: Union[None, str, List[int]] = None  # completion
    max_tokens: Optional[int] = None
    stop: List[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    sampling: dict = field(default_factory=dict)  # keyword arguments of Model.generate


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _number(body: dict, name: str, lo: float, hi: float) -> Optional[float]:
    v = body.get(name)
    if v is None:
        return None
    if not _is_number(v):
        raise bad_request(f"'{name}' must be a number, got {_show(v)}", name, "invalid_type")
    if not lo <= v <= hi:
        raise bad_request(f"'{name}' must be between {lo:g} and {hi:g}, got {v}", name, "invalid_value")
    return float(v)


def _integer(body: dict, name: str, lo: int, hi: Optional[int] = None) -> Optional[int]:
    v = body.get(name)
    if v is None:
        return None
    if not _is_int(v):
        raise bad_request(f"'{name}' must be an integer, got {_show(v)}", name, "invalid_type")
    if v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        raise bad_request(f"'{name}' must be {rng}, got {v}", name, "invalid_value")
    return v


def _boolean(body: dict, name: str, default: bool = False) -> bool:
    v = body.get(name)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise bad_request(f"'{name}' must be a boolean, got {_show(v)}", name, "invalid_type")
    return v


def _show(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def _common(body: Any, kind: str) -> GenerationRequest:
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", None, "invalid_type")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise bad_request(f"'model' must be a string, got {_show(model)}", "model", "invalid_type")
    n = _integer(body, "n", 1)
    if n is not None and n != 1:
        raise bad_request("Only n=1 is supported.", "n", "invalid_value")
    if _integer(body, "best_of", 1) not in (None, 1):
        raise bad_request("Only best_of=1 is supported.", "best_of", "invalid_value")
    if body.get("logprobs") not in (None, False, 0):
        raise bad_request("logprobs are not supported by this server.", "logprobs", "unsupported_value")

    req = GenerationRequest(kind=kind, model=model)
    limits = [_integer(body, name, 1) for name in ("max_tokens", "max_completion_tokens")]
    req.max_tokens = next((v for v in limits if v is not None), 16 if kind == "completion" else None)

    stop = body.get("stop")
    if stop is None:
        req.stop = []
    elif isinstance(stop, str):
        req.stop = [stop] if stop else []
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if len(stop) > _MAX_STOPS:
            raise bad_request(f"'stop' takes at most {_MAX_STOPS} strings, got {len(stop)}", "stop", "invalid_value")
        req.stop = [s for s in stop if s]
    else:
        raise bad_request(f"'stop' must be a string or a list of strings, got {_show(stop)}", "stop", "invalid_type")

    req.stream = _boolean(body, "stream")
    opts = body.get("stream_options")
    if opts is not None:
        if not isinstance(opts, dict):
            raise bad_request("'stream_options' must be an object.", "stream_options", "invalid_type")
        req.include_usage = _boolean(opts, "include_usage")

    s = {}
    for name, lo, hi in (("temperature", 0.0, 100.0), ("top_p", 0.0, 1.0), ("min_p", 0.0, 1.0),
                         ("presence_penalty", -2.0, 2.0), ("frequency_penalty", -2.0, 2.0),
                         ("repeat_penalty", 1e-6, 100.0)):
        v = _number(body, name, lo, hi)
        if v is not None:
            s[name] = v
    top_k = _integer(body, "top_k", 0)
    if top_k is not None:
        s["top_k"] = top_k
    seed = body.get("seed")
    if seed is not None:
        if not _is_int(seed):
            raise bad_request(f"'seed' must be an integer, got {_show(seed)}", "seed", "invalid_type")
        s["seed"] = seed & 0x7FFFFFFFFFFFFFFF  # OpenAI allows negative seeds; any is fine
    req.sampling = s
    return req


def _content_text(content: Any, i: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise bad_request(f"messages[{i}].content: only text parts ({{'type': 'text', 'text': ...}}) "
                                  f"are supported", f"messages[{i}].content", "invalid_value")
            parts.append(part["text"])
        return "".join(parts)
    raise bad_request(f"messages[{i}].content must be a string or a list of text parts, got {_show(content)}",
                      f"messages[{i}].content", "invalid_type")


def parse_chat(body: Any) -> GenerationRequest:
    req = _common(body, "chat")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty list of {'role', 'content'} objects.",
                          "messages", "invalid_type" if not isinstance(messages, list) else "invalid_value")
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise bad_request(f"messages[{i}] must be an object, got {_show(m)}", f"messages[{i}]", "invalid_type")
        role = m.get("role")
        if role not in _ROLES:
            raise bad_request(f"messages[{i}].role must be one of {sorted(_ROLES)}, got {_show(role)}",
                              f"messages[{i}].role", "invalid_value")
        role = "system" if role == "developer" else role
        clean.append({"role": role, "content": _content_text(m.get("content"), i)})
    if body.get("tools"):
        raise bad_request("tools are not supported by this server.", "tools", "unsupported_value")
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        # json_object / json_schema: checked here, so a bad schema is a 400 before any token
        from ..errors import GrammarError
        from ..grammar import grammar_from_response_format

        try:
            req.sampling["grammar"] = grammar_from_response_format(fmt)
        except (GrammarError, ImportError) as e:
            raise bad_request(f"response_format: {e}", "response_format", "invalid_value")
    req.messages = clean
    return req


def parse_completion(body: Any) -> GenerationRequest:
    req = _common(body, "completion")
    prompt = body.get("prompt")
    # OpenAI accepts a string, a list of token ids, or a batch of either; n=1 means one.
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if isinstance(prompt, str):
        if not prompt:
            raise bad_request("'prompt' is empty.", "prompt", "invalid_value")
    elif isinstance(prompt, list) and prompt and all(_is_int(t) for t in prompt):
        pass
    elif isinstance(prompt, list) and len(prompt) > 1:
        raise bad_request("Only one prompt per request is supported.", "prompt", "invalid_value")
    else:
        raise bad_request(f"'prompt' must be a non-empty string or list of token ids, got {_show(prompt)}",
                          "prompt", "invalid_type")
    if body.get("suffix"):
        raise bad_request("'suffix' is not supported by this server.", "suffix", "unsupported_value")
    if _boolean(body, "echo"):
        raise bad_request("'echo' is not supported by this server.", "echo", "unsupported_value")
    req.prompt = prompt
    return req
