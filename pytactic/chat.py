"""Chat templates: the GGUF's tokenizer.chat_template (a Jinja template written for
Hugging Face transformers), rendered the way transformers renders it, in a sandbox.

Where the file has no template: Gemma's turn format for Gemma models, ChatML
otherwise. A user may pass a built-in name or a template string of their own.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Dict, List, Optional

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class ChatTemplateError(ValueError):
    """A chat template that does not compile, or that refused the messages
    (raise_exception), or messages of the wrong shape."""


# ---- built-in formats ---------------------------------------------------------

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Gemma has no system role: system text opens the next user turn; "assistant" is "model".
GEMMA = (
    "{{ bos_token }}"
    "{% set ns = namespace(prefix='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% set ns.prefix = ns.prefix + message['content'] + '\\n\\n' %}"
    "{% else %}"
    "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\\n' }}"
    "{{ ns.prefix + (message['content'] | trim) + '<end_of_turn>\\n' }}"
    "{% set ns.prefix = '' %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)

LLAMA3 = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + (message['content'] | trim) + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

BUILTIN = {"chatml": CHATML, "gemma": GEMMA, "llama3": LLAMA3, "llama-3": LLAMA3}


# ---- the environment transformers uses ------------------------------------------

def _raise_exception(message):
    raise ChatTemplateError(f"the chat template refused the messages: {message}")


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # transformers' tojson: unlike Jinja's own, no HTML escaping, unicode kept.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt):
    return datetime.now().strftime(fmt)


def make_environment() -> ImmutableSandboxedEnvironment:
    """A sandbox like transformers': trim_blocks, lstrip_blocks, loop controls,
    raise_exception, strftime_now and a json-style tojson."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


_ENV = None


def _env():
    global _ENV
    if _ENV is None:
        _ENV = make_environment()
    return _ENV


def _text_of(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            else:
                raise ChatTemplateError(f"this chat format takes text only, got a content part {part!r}")
        return "".join(parts)
    raise ChatTemplateError(f"message content must be a string or a list of parts, got {type(content).__name__}")


class ChatTemplate:
    """A compiled chat template with the model's BOS / EOS texts."""

    def __init__(self, source: str, bos_token: str = "", eos_token: str = "", name: Optional[str] = None):
        if not isinstance(source, str) or not source:
            raise ChatTemplateError("a chat template must be a non-empty string")
        self.source = source
        self.name = name or "custom"
        self.bos_token = bos_token
        self.eos_token = eos_token
        try:
            self._tpl = _env().from_string(source)
        except jinja2.TemplateSyntaxError as e:
            raise ChatTemplateError(f"chat template {self.name!r} does not compile: {e.message} (line {e.lineno})") from e

    def render(self, messages: List[Dict[str, Any]], add_generation_prompt: bool = True, tools=None,
               **extra) -> str:
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or "role" not in m:
                raise ChatTemplateError(f"message {i} must be a dict with a 'role' (and 'content'), got {m!r}")
        if self.name in BUILTIN:
            # The built-in formats take text; OpenAI-style lists of parts become text.
            messages = [dict(m, content=_text_of(m.get("content"))) for m in messages]
        variables = dict(
            messages=list(messages),
            tools=tools,
            documents=None,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
        )
        variables.update(extra)
        try:
            return self._tpl.render(**variables)
        except ChatTemplateError:
            raise
        except jinja2.TemplateError as e:
            raise ChatTemplateError(f"chat template {self.name!r} failed: {e}") from e
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
            raise ChatTemplateError(f"chat template {self.name!r} cannot render these messages: {e!r}") from e

    def __repr__(self) -> str:
        return f"<ChatTemplate {self.name}>"


def resolve(chat_format: Optional[str], gguf_template: Optional[str], architecture: str) -> tuple:
    """(source, name) of the template to use: the user's choice (a built-in name
    or a template string), else the GGUF's, else a built-in for the architecture."""
    if chat_format is not None:
        key = chat_format.strip().lower()
        if key in BUILTIN:
            return BUILTIN[key], key
        if "{{" in chat_format or "{%" in chat_format:
            return chat_format, "custom"
        raise ChatTemplateError(
            f"unknown chat_format {chat_format!r}: use one of {sorted(BUILTIN)} or a Jinja template string"
        )
    if gguf_template:
        return gguf_template, "gguf"
    if architecture.startswith("gemma"):
        return GEMMA, "gemma"
    return CHATML, "chatml"


def template_for_model(model, chat_format: Optional[str] = None) -> ChatTemplate:
    """The ChatTemplate of a pytactic.Model (reads tokenizer.chat_template)."""
    source, name = resolve(chat_format, model.metadata("tokenizer.chat_template"), model.architecture)

    def text_of(tok):
        if tok < 0:
            return ""
        return model.token_to_piece(tok, special=True).decode("utf-8", "replace")

    return ChatTemplate(source, bos_token=text_of(model.token_bos), eos_token=text_of(model.token_eos), name=name)
