"""OpenAI-shaped dictionaries (as llama-cpp-python returns them) around a stream of
text pieces: text completions and chat completions, whole or as chunks."""

from __future__ import annotations

import time
import uuid
from typing import Iterable, Iterator, Union

from .stats import GenerationStats


def usage(stats: GenerationStats) -> dict:
    return {
        "prompt_tokens": stats.n_prompt,
        "completion_tokens": stats.n_generated,
        "total_tokens": stats.n_prompt + stats.n_generated,
    }


def completion(pieces: Iterable[str], stats: GenerationStats, model: str,
               stream: bool) -> Union[dict, Iterator[dict]]:
    """A "text_completion" dict, or with stream=True an iterator of chunk dicts.
    stats.finish_reason is read once the pieces are exhausted."""
    cid, created = f"cmpl-{uuid.uuid4()}", int(time.time())

    def chunk(text, finish):
        return {
            "id": cid, "object": "text_completion", "created": created, "model": model,
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
        }

    if stream:
        def chunks():
            for p in pieces:
                yield chunk(p, None)
            yield chunk("", stats.finish_reason)
        return chunks()
    out = chunk("".join(pieces), stats.finish_reason)
    out["usage"] = usage(stats)
    return out


def chat_completion(pieces: Iterable[str], stats: GenerationStats, model: str,
                    stream: bool) -> Union[dict, Iterator[dict]]:
    """A "chat.completion" dict, or with stream=True "chat.completion.chunk" dicts:
    the role first, then content pieces, the last one with the finish reason."""
    cid, created = f"chatcmpl-{uuid.uuid4()}", int(time.time())

    def chunk(delta, finish):
        return {
            "id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    if stream:
        def chunks():
            yield chunk({"role": "assistant"}, None)
            for p in pieces:
                yield chunk({"content": p}, None)
            yield chunk({}, stats.finish_reason)
        return chunks()
    text = "".join(pieces)
    return {
        "id": cid, "object": "chat.completion", "created": created, "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": None,
            "finish_reason": stats.finish_reason,
        }],
        "usage": usage(stats),
    }
