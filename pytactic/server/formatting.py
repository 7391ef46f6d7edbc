"""The response bodies of /v1/completions and /v1/chat/completions, whole and as
stream chunks, in OpenAI's format. usage.prompt_tokens_details.cached_tokens says how
many prompt tokens were served from a slot's cache (as OpenAI reports its own)."""

from __future__ import annotations

import time
import uuid
from typing import Optional


def usage(stats) -> dict:
    return {
        "prompt_tokens": stats.n_prompt,
        "completion_tokens": stats.n_generated,
        "total_tokens": stats.n_prompt + stats.n_generated,
        "prompt_tokens_details": {"cached_tokens": stats.n_cached},
    }


def timings(stats) -> dict:
    """llama-server's extension: where the time went."""
    return {
        "prompt_n": stats.n_prompt - stats.n_cached, "prompt_ms": round(stats.prefill_s * 1e3, 2),
        "predicted_n": stats.n_generated, "predicted_ms": round(stats.decode_s * 1e3, 2),
    }


class Formatter:
    """Builds the bodies of one response (one id and creation time for all chunks)."""

    def __init__(self, kind: str, model: str):
        self.kind = kind
        self.model = model
        self.id = ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())

    def _head(self, obj: str) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model,
                "system_fingerprint": "pytactic"}

    def whole(self, text: str, stats) -> dict:
        finish = stats.finish_reason or "stop"
        if self.kind == "chat":
            out = self._head("chat.completion")
            out["choices"] = [{"index": 0, "message": {"role": "assistant", "content": text},
                               "logprobs": None, "finish_reason": finish}]
        else:
            out = self._head("text_completion")
            out["choices"] = [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]
        out["usage"] = usage(stats)
        out["timings"] = timings(stats)
        return out

    def chunk(self, text: Optional[str], finish: Optional[str] = None, first: bool = False) -> dict:
        if self.kind == "chat":
            out = self._head("chat.completion.chunk")
            delta = {"role": "assistant", "content": ""} if first else ({"content": text} if text else {})
            out["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        else:
            out = self._head("text_completion")
            out["choices"] = [{"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}]
        return out

    def usage_chunk(self, stats) -> dict:
        """stream_options.include_usage: a last chunk with no choices and the usage."""
        out = self._head("chat.completion.chunk" if self.kind == "chat" else "text_completion")
        out["choices"] = []
        out["usage"] = usage(stats)
        return out
