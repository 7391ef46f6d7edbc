"""Sampling settings and the native sampler (llama.cpp's chain: penalties -> top-k ->
top-p -> min-p -> temperature), usable on its own over any logits."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional

from ._native import check, ffi, lib


@dataclass
class SamplingParams:
    """llama.cpp's sampler chain: penalties -> top-k -> top-p -> min-p -> temperature.
    temperature <= 0 means greedy (argmax after penalties)."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: Optional[int] = None  # None: a fresh random seed each call

    def validate(self) -> None:
        def number(name):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{name} must be a number, got {v!r}")
            if v != v or v in (float("inf"), float("-inf")):
                raise ValueError(f"{name} must be finite, got {v!r}")
            return v

        number("temperature")
        if not 0.0 <= number("top_p") <= 1.0:
            raise ValueError(f"top_p must be in [0, 1], got {self.top_p}")
        if not 0.0 <= number("min_p") <= 1.0:
            raise ValueError(f"min_p must be in [0, 1], got {self.min_p}")
        if number("repeat_penalty") <= 0:
            raise ValueError(f"repeat_penalty must be > 0 (1 = off), got {self.repeat_penalty}")
        number("presence_penalty")
        number("frequency_penalty")
        for name in ("top_k", "repeat_last_n"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{name} must be an integer, got {v!r}")
        if self.repeat_last_n < -1:
            raise ValueError(f"repeat_last_n must be >= -1 (-1 = whole history), got {self.repeat_last_n}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < -1):
            raise ValueError(f"seed must be a non-negative integer, -1 or None (random), got {self.seed!r}")


class Sampler:
    """A native sampler. Usable on its own over any logits (numpy float32 rows):

        s = Sampler(temperature=0.7, top_k=40, seed=1)
        token = s.sample(model.logits())
        s.accept(token)
    """

    def __init__(self, params: Optional[SamplingParams] = None, **kw):
        params = params if params is not None else SamplingParams(**kw)
        params.validate()
        self.params = params
        seed = params.seed
        if seed is None or seed == -1:
            seed = int.from_bytes(os.urandom(8), "little")
        self.seed = seed
        p = lib.tactic_sampler_default_params()
        p.temperature = params.temperature
        p.top_k = params.top_k
        p.top_p = params.top_p
        p.min_p = params.min_p
        p.repeat_penalty = params.repeat_penalty
        p.repeat_last_n = params.repeat_last_n
        p.presence_penalty = params.presence_penalty
        p.frequency_penalty = params.frequency_penalty
        p.seed = seed & 0xFFFFFFFFFFFFFFFF
        out = ffi.new("tactic_sampler **")
        check(lib.tactic_sampler_new(ffi.new("tactic_sampler_params *", p), out), "sampler")
        self._s = ffi.gc(out[0], lib.tactic_sampler_free)
        self._out = ffi.new("int32_t *")

    def sample(self, logits, mask=None) -> int:
        """Pick a token from a 1-D float32 array (or any buffer of float32).
        mask: None, or uint32 words with one bit per token (bit i % 32 of word i // 32;
        1 = allowed): the other tokens are removed before any sampling step."""
        import numpy as np

        arr = np.ascontiguousarray(logits, dtype=np.float32)
        if arr.ndim != 1:
            raise ValueError(f"logits must be one row (1-D), got shape {arr.shape}")
        ptr = ffi.cast("const float *", ffi.from_buffer(arr))
        if mask is None:
            return self._sample_ptr(ptr, arr.shape[0])
        words = np.ascontiguousarray(mask, dtype=np.uint32)
        if words.ndim != 1 or words.shape[0] != (arr.shape[0] + 31) // 32:
            raise ValueError(f"mask must be {(arr.shape[0] + 31) // 32} uint32 words for {arr.shape[0]} logits, "
                             f"got shape {words.shape}")
        return self._sample_ptr(ptr, arr.shape[0], ffi.cast("const uint32_t *", ffi.from_buffer(words)))

    def _sample_ptr(self, ptr, n_vocab: int, mask=None) -> int:
        if mask is None:
            check(lib.tactic_sampler_sample(self._s, ptr, n_vocab, self._out), "sample")
        else:
            check(lib.tactic_sampler_sample_masked(self._s, ptr, n_vocab, mask, self._out), "sample")
        return int(self._out[0])

    def accept(self, token: int) -> None:
        check(lib.tactic_sampler_accept(self._s, int(token)), "sampler accept")

    def reset(self) -> None:
        lib.tactic_sampler_reset(self._s)


def sampling_params(kw: dict) -> SamplingParams:
    """SamplingParams from a call's keyword arguments; unknown names are a TypeError."""
    bad = set(kw) - set(SamplingParams.__dataclass_fields__)
    if bad:
        raise TypeError(f"unknown sampling argument(s): {', '.join(sorted(bad))}")
    params = SamplingParams(**kw)
    params.validate()
    return params


def stop_list(stop) -> List[str]:
    """A call's stop= argument (None, a string or strings) as a list of strings."""
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    stop = list(stop)
    for s in stop:
        if not isinstance(s, str):
            raise ValueError(f"stop must be a string or a list of strings, got {s!r}")
    return stop


def check_max_tokens(max_tokens) -> None:
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)):
        raise ValueError(f"max_tokens must be an integer or None, got {max_tokens!r}")
