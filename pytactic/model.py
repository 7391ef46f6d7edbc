"""The one class a user meets: Model. Loads a GGUF file through libtactic, tokenizes,
evaluates, samples, streams text and chats, in the manner of llama-cpp-python's Llama.

Text conventions:
  * tokenize() takes str or bytes and returns a list of ids.
  * detokenize() returns bytes, as llama-cpp-python's does (a token may end in the
    middle of a UTF-8 character); decode() returns str (invalid bytes replaced).
  * generate() returns str, or with stream=True an iterator of str pieces, each
    valid UTF-8 text: bytes of a character split across tokens are held back
    until the character is complete.
"""

from __future__ import annotations

import os
import random
import sys
import time
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Union

from . import openai_format
from ._native import check, ffi, lib
from .cancellable import run_cancellable
from .errors import (
    ContextLengthError,
    InvalidArgumentError,
    InvalidModelError,
    ModelFileError,
    TacticError,
)
from .sampling import Sampler, SamplingParams, check_max_tokens, sampling_params, stop_list
from .stats import GenerationStats
from .text_stream import TextAssembler
from .context_size import default_n_ctx, describe_kv_memory

__all__ = ["Model", "Sampler", "SamplingParams", "GenerationStats"]

_ATTENTION = {"auto": 0, "full": 1, "tactic": 2}
_DEVICE = {"auto": 0, "cpu": 1, "cuda": 2}
_DEVICE_NAME = {1: "cpu", 2: "cuda"}
_said_cpu = False  # "auto" fell back to the CPU: said once per process
_FALLBACK_N_CTX = 4096  # a model that does not say what it was trained on
# Prefills at least this long run on a worker thread so Ctrl-C can cancel them.
_CANCELLABLE_EVAL = 32
# End-of-turn markers of common chat formats: generation stops on these tokens even
# where the GGUF does not mark them end-of-generation.
_END_OF_TURN_TEXTS = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>")


def _ids(tokens: Iterable[int]) -> List[int]:
    return [int(t) for t in tokens]


def _say_cpu() -> None:
    global _said_cpu
    if not _said_cpu:
        _said_cpu = True
        sys.stderr.write("pytactic: no usable CUDA GPU, running on the CPU\n")


def _say_ignored(n_gpu_layers: int) -> None:
    # As llama.cpp does when it uses no GPU: the option is ignored, and it says so.
    sys.stderr.write(f"pytactic: n_gpu_layers={n_gpu_layers} is ignored with device='cpu': every layer runs on the CPU\n")


class Model:
    """A GGUF model with one context (KV cache) for generation.

    Model(path, n_ctx=None, n_threads=None, n_batch=512, seed=None, verbose=False,
          attention="auto", tactic_p=0.9, cluster_size=16, tactic_min_ctx=None,
          tactic_force_fraction=0.0, chat_format=None, device="auto", n_gpu_layers=-1,
          swa_full=False)

    n_ctx: tokens the context holds. None (default): the model's training context,
      capped so that the KV cache takes at most half the memory available now; 0: the
      training context. The KV cache is committed as it fills, so an unused context
      costs little; sliding-window layers keep only their window (+ n_batch) unless
      swa_full=True. verbose=True prints the KV memory up front (kv_memory() gives it).
    attention: "full" (exact), "tactic" (sparse decode attention), or "auto" (Tactic
      once the cache holds tactic_min_ctx tokens; None = the library's default,
      measured on CPU, docs/TACTIC.md).
    tactic_p: the share of each head's attention mass Tactic keeps.
    tactic_force_fraction: in (0, 1], Tactic keeps exactly this share of the cached
      tokens per head instead of targeting tactic_p (benchmarks, e.g. on random-weight
      models); 0 = off.
    chat_format: None (the GGUF's tokenizer.chat_template, else a built-in format
      for the architecture), a built-in name ("chatml", "gemma", "llama3"), or a
      Jinja template string.
    seed: seeds the sampling seeds of calls that pass none (None: random).
    device: "cuda" (weights, KV cache and activations on the GPU; attention full unless
      attention="tactic": then Tactic's clusters and selection run on the GPU too),
      "cpu", or "auto" (CUDA when a usable GPU is there, else the CPU, said once).
      self.device tells which one runs.
    n_gpu_layers: on CUDA, the first n layers run on the GPU and the rest (with the
      embedding and output head) on the CPU, as llama.cpp's -ngl, for models larger than
      the card. -1 (default) or >= the layer count: all; 0: CPU only. Where the model
      runs on the CPU it is ignored, as llama.cpp ignores -ngl without a GPU: device="cpu"
      with n > 0 says so in one line, "auto" without a GPU says it uses the CPU. Other
      values: InvalidArgumentError. self.n_gpu_layers tells how many layers run on the GPU.

    One thread at a time per Model (a second thread inside a native call gets
    BusyError). Consecutive generations reuse the KV cache for the longest common
    prompt prefix, so a chat only evaluates each new turn.
    """

    def __init__(
        self,
        path: Union[str, os.PathLike],
        *,
        n_ctx: Optional[int] = None,
        n_threads: Optional[int] = None,
        n_batch: int = 512,
        seed: Optional[int] = None,
        verbose: bool = False,
        attention: str = "auto",
        tactic_p: float = 0.9,
        cluster_size: int = 16,
        tactic_min_ctx: Optional[int] = None,
        tactic_force_fraction: float = 0.0,
        chat_format: Optional[str] = None,
        chat_template: Optional[str] = None,
        vocab_only: bool = False,
        use_mmap: bool = True,
        device: str = "auto",
        n_gpu_layers: int = -1,
        swa_full: bool = False,
    ):
        self._model = None
        self._ctx = None
        self._spare_core = False
        self.path = os.fspath(path)
        self.verbose = verbose
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an integer or None, got {seed!r}")
        self.seed = seed
        # Model(seed=...) seeds the stream of per-call sampling seeds (calls that
        # pass no seed of their own), as llama-cpp-python's Llama(seed=...) does.
        self._seeds = random.Random(seed) if seed is not None and seed >= 0 else None
        if not os.path.exists(self.path):
            raise ModelFileError(f"model file not found: {self.path}")
        if os.path.isdir(self.path):
            raise ModelFileError(f"{self.path} is a directory, not a GGUF file")
        with open(self.path, "rb") as f:
            magic = f.read(4)
        if magic != b"GGUF":
            raise InvalidModelError(f"{self.path} is not a GGUF file (it starts with {magic!r}, not b'GGUF')")
        if attention not in _ATTENTION:
            raise ValueError(f"attention must be one of {sorted(_ATTENTION)}, got {attention!r}")
        if device not in _DEVICE:
            raise ValueError(f"device must be one of {sorted(_DEVICE)}, got {device!r}")
        if isinstance(n_gpu_layers, bool) or not isinstance(n_gpu_layers, int) or n_gpu_layers < -1:
            raise InvalidArgumentError(
                f"n_gpu_layers must be an integer >= -1 (-1: all layers, 0: CPU only), got {n_gpu_layers!r}")
        for name, v in (("n_batch", n_batch), ("cluster_size", cluster_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if n_threads is not None and (not isinstance(n_threads, int) or n_threads < 0):
            raise ValueError(f"n_threads must be a non-negative integer, got {n_threads!r}")
        if n_ctx is not None and (not isinstance(n_ctx, int) or n_ctx < 0):
            raise ValueError(f"n_ctx must be a non-negative integer (0 = the model's), got {n_ctx!r}")
        if not (isinstance(tactic_p, (int, float)) and 0 < tactic_p <= 1):
            raise ValueError(f"tactic_p must be in (0, 1], got {tactic_p!r}")
        if tactic_min_ctx is not None and (isinstance(tactic_min_ctx, bool) or not isinstance(tactic_min_ctx, int)
                                           or tactic_min_ctx < 0):
            raise ValueError(f"tactic_min_ctx must be a non-negative integer or None, got {tactic_min_ctx!r}")
        if (isinstance(tactic_force_fraction, bool) or not isinstance(tactic_force_fraction, (int, float))
                or not 0 <= tactic_force_fraction <= 1):
            raise ValueError(f"tactic_force_fraction must be in [0, 1] (0 = off), got {tactic_force_fraction!r}")

        t0 = time.perf_counter()
        mp = lib.tactic_model_default_params()
        mp.use_mmap = 1 if use_mmap else 0
        mp.vocab_only = 1 if vocab_only else 0
        mp.n_threads = n_threads or 0
        out = ffi.new("tactic_model **")
        check(lib.tactic_model_load(self.path.encode(), ffi.new("tactic_model_params *", mp), out))
        self._model = out[0]
        self.vocab_only = vocab_only

        self.n_vocab = 0  # known once the weights are loaded
        self.info = None
        if not vocab_only:
            info = ffi.new("tactic_model_info *")
            check(lib.tactic_model_get_info(self._model, info))
            self.info = info
            self.n_vocab = int(info.n_vocab)
            cp = lib.tactic_context_default_params()
            cp.n_threads = n_threads or 0
            # A core the forward pass leaves free (a grammar's mask can be computed there).
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            self._spare_core = bool(n_threads) and n_threads < cores
            cp.n_batch = n_batch
            cp.swa_full = 1 if swa_full else 0
            if n_ctx is None:
                n_ctx = default_n_ctx(self._model, cp, int(info.n_ctx_train) or _FALLBACK_N_CTX)
            cp.n_ctx = n_ctx
            cp.attention = _ATTENTION[attention]
            cp.device = _DEVICE[device]
            if device == "auto":
                cp.device = _DEVICE["cuda"] if lib.tactic_cuda_device_count() > 0 else _DEVICE["cpu"]
            cp.n_gpu_layers = n_gpu_layers
            if cp.device == _DEVICE["cuda"] and n_gpu_layers == 0:
                cp.device = _DEVICE["cpu"]  # no layer on the GPU: a CPU context
            elif device == "cpu" and n_gpu_layers > 0:
                _say_ignored(n_gpu_layers)  # (auto without a GPU says so in _say_cpu)
            if cp.device == _DEVICE["cuda"]:
                if attention != "tactic":  # on the GPU Tactic runs only when asked for: its pages cost memory
                    cp.attention = _ATTENTION["full"]
            elif device == "auto":
                _say_cpu()
            cp.tactic_p = tactic_p
            cp.cluster_size = cluster_size
            if tactic_min_ctx is not None:
                cp.tactic_min_ctx = tactic_min_ctx
            cp.tactic_force_fraction = float(tactic_force_fraction)
            if seed is not None and seed >= 0:
                cp.seed = seed
            cout = ffi.new("tactic_context **")
            try:
                check(lib.tactic_context_new(self._model, ffi.new("tactic_context_params *", cp), cout), "context")
            except BaseException:
                lib.tactic_model_free(self._model)
                self._model = None
                raise
            self._ctx = cout[0]
            self.n_ctx = int(lib.tactic_context_n_ctx(self._ctx))
            self.n_batch = min(n_batch, self.n_ctx)
            self.device = _DEVICE_NAME.get(int(lib.tactic_context_device(self._ctx)), "cpu")
            n_layer = int(info.n_layer)
            self.n_gpu_layers = (0 if self.device != "cuda" else
                                 n_layer if n_gpu_layers < 0 else min(n_gpu_layers, n_layer))
        else:
            self.n_ctx = 0
            self.n_batch = n_batch
            self.device = "cpu"
            self.n_gpu_layers = 0
        self._cached: List[int] = []  # the tokens whose K/V the context holds, in order
        self._generation = 0  # bumps at every generation start: stale iterators notice
        self.last_stats = GenerationStats()
        self._eot_ids = self._end_of_turn_ids()
        self._chat_format = chat_template if chat_template is not None else chat_format
        self._template = None
        if self._chat_format is not None:
            from .chat import template_for_model

            try:  # a wrong name or a template that does not compile: say so now
                self._template = template_for_model(self, self._chat_format)
            except BaseException:
                self.close()
                raise
        if verbose:
            import sys

            desc = self.architecture if not vocab_only else "vocab only"
            print(
                f"pytactic: loaded {self.path} ({desc}, n_ctx={self.n_ctx}) in "
                f"{time.perf_counter() - t0:.2f}s; {ffi.string(lib.tactic_build_info()).decode()}",
                file=sys.stderr,
            )
            if not vocab_only:
                print(f"pytactic: {describe_kv_memory(self.kv_memory())}", file=sys.stderr)

    # -- lifetime ------------------------------------------------------------

    def close(self) -> None:
        """Free the context and the model. Further calls raise RuntimeError."""
        if self._ctx is not None:
            lib.tactic_context_free(self._ctx)
            self._ctx = None
        if self._model is not None:
            lib.tactic_model_free(self._model)
            self._model = None

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    @property
    def closed(self) -> bool:
        return self._model is None

    def _m(self):
        if self._model is None:
            raise RuntimeError("this Model is closed")
        return self._model

    def _c(self):
        self._m()
        if self._ctx is None:
            raise RuntimeError("this Model was loaded with vocab_only=True: it cannot evaluate")
        return self._ctx

    # -- metadata -------------------------------------------------------------

    def metadata(self, key: str) -> Optional[str]:
        """A GGUF metadata value as a string, or None if the file lacks the key."""
        out = ffi.new("const char **")
        st = lib.tactic_model_meta_str(self._m(), key.encode(), out)
        if st != 0:
            return None
        return ffi.string(out[0]).decode("utf-8", "replace")

    @property
    def architecture(self) -> str:
        return self.metadata("general.architecture") or ""

    @property
    def token_bos(self) -> int:
        return int(lib.tactic_token_bos(self._m()))

    @property
    def token_eos(self) -> int:
        return int(lib.tactic_token_eos(self._m()))

    def is_eog(self, token: int) -> bool:
        return bool(lib.tactic_token_is_eog(self._m(), int(token))) or int(token) in self._eot_ids

    def _end_of_turn_ids(self) -> set:
        ids = set()
        for text in _END_OF_TURN_TEXTS:
            try:
                toks = self.tokenize(text, add_bos=False, special=True)
            except (TacticError, AttributeError):  # AttributeError: no tokenizer in this build
                continue
            if len(toks) == 1 and self.token_to_piece(toks[0], special=True) == text.encode():
                ids.add(toks[0])
        return ids

    # -- tokenizer ------------------------------------------------------------

    def tokenize(self, text: Union[str, bytes], add_bos: bool = True, special: bool = False) -> List[int]:
        """Token ids of text. add_bos: add BOS (and EOS) as the GGUF says.
        special: recognise control-token texts such as "<start_of_turn>"."""
        if isinstance(text, str):
            data = text.encode("utf-8")
        elif isinstance(text, (bytes, bytearray, memoryview)):
            data = bytes(text)
        else:
            raise TypeError(f"tokenize() takes str or bytes, got {type(text).__name__}")
        m = self._m()
        n_out = ffi.new("int32_t *")
        cap = len(data) + 8
        for _ in range(2):
            buf = ffi.new("int32_t[]", cap)
            st = lib.tactic_tokenize(m, data, len(data), int(bool(add_bos)), int(bool(special)), buf, cap, n_out)
            if st == 0:
                return list(buf[0 : n_out[0]])
            if n_out[0] > cap:
                cap = n_out[0]
                continue
            check(st, "tokenize")
        check(st, "tokenize")
        return []

    def token_to_piece(self, token: int, special: bool = False) -> bytes:
        """The bytes of one token (may be part of a UTF-8 character)."""
        m = self._m()
        n_out = ffi.new("int32_t *")
        buf = ffi.new("char[]", 64)
        st = lib.tactic_token_to_piece(m, int(token), int(bool(special)), buf, 64, n_out)
        if st != 0 and n_out[0] > 64:
            buf = ffi.new("char[]", n_out[0])
            st = lib.tactic_token_to_piece(m, int(token), int(bool(special)), buf, n_out[0], n_out)
        check(st, f"token {token}")
        return ffi.buffer(buf, n_out[0])[:]

    def detokenize(self, tokens: Iterable[int], special: bool = False) -> bytes:
        """The bytes of a token sequence (bytes, like llama-cpp-python; see decode())."""
        ids = _ids(tokens)
        m = self._m()
        arr = ffi.new("int32_t[]", ids)
        n_out = ffi.new("int32_t *")
        cap = 16 * len(ids) + 16
        buf = ffi.new("char[]", cap)
        st = lib.tactic_detokenize(m, arr, len(ids), int(bool(special)), buf, cap, n_out)
        if st != 0 and n_out[0] > cap:
            cap = n_out[0]
            buf = ffi.new("char[]", cap)
            st = lib.tactic_detokenize(m, arr, len(ids), int(bool(special)), buf, cap, n_out)
        check(st, "detokenize")
        return ffi.buffer(buf, n_out[0])[:]

    def decode(self, tokens: Iterable[int], special: bool = False) -> str:
        """detokenize() as text (invalid UTF-8 replaced by U+FFFD)."""
        return self.detokenize(tokens, special).decode("utf-8", "replace")

    # -- evaluation -------------------------------------------------------------

    @property
    def n_past(self) -> int:
        return int(lib.tactic_context_n_past(self._c()))

    @property
    def cached_tokens(self) -> List[int]:
        """The tokens the KV cache holds (after the last eval/generation)."""
        return list(self._cached)

    def reset(self) -> None:
        """Empty the KV cache."""
        self._generation += 1  # an unfinished generation cannot resume over it
        self._truncate(0)

    def _truncate(self, n_keep: int) -> None:
        # Sliding-window rings may keep fewer tokens than asked (see tactic.h): n_past says.
        check(lib.tactic_context_truncate(self._c(), n_keep), "truncate")
        del self._cached[min(n_keep, self.n_past):]

    @property
    def n_evaluated(self) -> int:
        """Tokens this Model's context has evaluated since it was created (native counter)."""
        return int(lib.tactic_context_n_evaluated(self._c()))

    def kv_memory(self) -> dict:
        """The KV cache's bytes from the runtime's accounting: reserved (the whole context,
        sliding-window layers at their ring size), committed (written so far), checkpoints
        (ring copies kept for prefix reuse) and flat (every layer n_ctx positions)."""
        out = ffi.new("tactic_kv_memory *")
        check(lib.tactic_context_kv_memory(self._c(), out), "kv_memory")
        return {k: int(getattr(out, k)) for k in ("reserved", "committed", "checkpoints", "flat")}

    def checkpoint(self) -> None:
        """Remember the sliding-window rings at the current position, so that a later
        prompt sharing the cached tokens up to here reuses them (prefill() does this at
        the end of every prompt)."""
        check(lib.tactic_context_checkpoint(self._c()), "checkpoint")

    def eval(self, tokens: Sequence[int], logits_all: bool = False, *,
             on_progress: Optional[Callable[[int, int], None]] = None) -> None:
        """Evaluate tokens after the cached ones (KV cache appended). Then logits(i)
        gives row i (logits_all) or the last row (-1). on_progress(done, total) is
        called as the tokens are read (batch by batch; logits_all: once at the end)."""
        self._generation += 1  # an unfinished generation cannot resume over it
        self._eval(tokens, logits_all, on_progress)

    def _eval(self, tokens: Sequence[int], logits_all: bool = False,
              on_progress: Optional[Callable[[int, int], None]] = None) -> None:
        ids = _ids(tokens)
        if on_progress is None or logits_all or len(ids) <= self.n_batch:
            self._eval_once(ids, logits_all)
            if on_progress is not None and ids:
                on_progress(len(ids), len(ids))
            return
        # Batch by batch, at the boundaries the native loop uses anyway (same numerics),
        # so that the callback runs on this thread between batches.
        self._check_room(ids)
        on_progress(0, len(ids))
        for b in range(0, len(ids), self.n_batch):
            self._eval_once(ids[b : b + self.n_batch], False)
            on_progress(min(b + self.n_batch, len(ids)), len(ids))

    def _check_room(self, ids: List[int]) -> None:
        n_past = self.n_past
        if n_past + len(ids) > self.n_ctx:
            raise ContextLengthError(
                f"{len(ids)} tokens after the {n_past} cached ones need {n_past + len(ids)} "
                f"positions, but the context holds {self.n_ctx} (n_ctx)"
            )

    def _eval_once(self, ids: List[int], logits_all: bool = False) -> None:
        if not ids:
            return
        ctx = self._c()
        self._check_room(ids)
        for t in ids:
            if not 0 <= t < self.n_vocab:
                raise ValueError(f"token id {t} is outside the vocabulary [0, {self.n_vocab})")
        arr = ffi.new("int32_t[]", ids)
        try:
            if len(ids) >= _CANCELLABLE_EVAL:
                st = run_cancellable(lambda: lib.tactic_eval(ctx, arr, len(ids), int(bool(logits_all))),
                                     lambda: lib.tactic_cancel(ctx))
            else:
                st = lib.tactic_eval(ctx, arr, len(ids), int(bool(logits_all)))
        finally:
            # Whatever happened (error, cancel), keep our view of the cache in step.
            # In place: a copy of the list per call costs ~1 ms a token at 128K cached.
            now = int(lib.tactic_context_n_past(ctx))
            if now >= len(self._cached):
                self._cached.extend(ids[: now - len(self._cached)])
            else:
                del self._cached[now:]
        check(st, "eval")

    def logits(self, i: int = -1):
        """A copy of the logits of row i of the last eval (-1: the last), as numpy."""
        import numpy as np

        ptr = self._logits_ptr(i)
        return np.frombuffer(ffi.buffer(ptr, 4 * self.n_vocab), dtype=np.float32).copy()

    def _logits_ptr(self, i: int = -1):
        ctx = self._c()
        n_rows = int(lib.tactic_get_n_logits_rows(ctx))
        if n_rows == 0:
            raise RuntimeError("no logits yet: call eval() first")
        if not (-1 <= i < n_rows):
            raise IndexError(f"logits row {i} out of range (the last eval kept {n_rows} rows)")
        ptr = lib.tactic_get_logits(ctx, i)
        if ptr == ffi.NULL:
            check(1, "logits")
        return ptr

    # -- generation ---------------------------------------------------------------

    def _prompt_ids(self, prompt, add_bos: Optional[bool], special: bool) -> List[int]:
        if isinstance(prompt, (str, bytes)):
            return self.tokenize(prompt, add_bos=True if add_bos is None else add_bos, special=special)
        ids = _ids(prompt)
        if not ids:
            raise ValueError("the prompt is empty")
        return ids

    def _check_fits(self, ids: List[int]) -> None:
        self._c()
        if len(ids) > self.n_ctx:
            raise ContextLengthError(
                f"the prompt has {len(ids)} tokens but the context holds only {self.n_ctx} "
                f"(n_ctx); shorten the prompt or load the model with a larger n_ctx"
            )

    def _prefill(self, ids: List[int], on_progress=None) -> int:
        """Make the cache hold exactly ids with logits for the last one, reusing the
        longest common prefix already cached. Returns the number of reused tokens."""
        self._check_fits(ids)
        # The native count is the truth: a Ctrl-C between an eval and our bookkeeping
        # can leave self._cached one token short. Below, whatever we are not sure of
        # is dropped from the cache.
        n_past = int(lib.tactic_context_n_past(self._ctx))
        del self._cached[n_past:]
        n = 0
        limit = min(len(self._cached), len(ids) - 1)  # the last token is always re-evaluated
        while n < limit and self._cached[n] == ids[n]:
            n += 1
        if n < n_past:
            self._truncate(n)  # may keep fewer (sliding-window rings)
        n = len(self._cached)
        self._eval(ids[n:], False, on_progress)
        self.checkpoint()  # a later prompt that shares this one's tokens comes back here
        return n

    def eval_prefix(self, ids: Sequence[int], *, on_progress=None) -> int:
        """Make the cache hold exactly these tokens (reusing the common prefix), and
        checkpoint there: a shared prefix such as a document. Returns the reused count."""
        ids = _ids(ids)
        self._check_fits(ids)
        self._generation += 1
        return self._prefill(ids, on_progress)

    def _tokens(self, prompt_ids: List[int], max_tokens: Optional[int], params: SamplingParams,
                stats: GenerationStats, mask=None, on_progress=None) -> Iterator[int]:
        """Prefill, then yield sampled tokens until an end-of-generation token (not
        yielded), max_tokens or a full context. Sets stats.finish_reason.
        mask: None, or a grammar.GrammarMatcher that allows tokens step by step."""
        self._c()
        self._generation += 1
        me = self._generation
        if params.seed is None and self._seeds is not None:
            params = SamplingParams(**{**params.__dict__, "seed": self._seeds.getrandbits(63)})
        sampler = Sampler(params)
        ctx = self._ctx
        stats.n_prompt = len(prompt_ids)
        self.last_stats = stats  # also when interrupted during the prefill
        t0 = time.perf_counter()
        if mask is not None:
            mask.prefetch()  # the first mask is computed while the prompt is evaluated
        evaluated0 = self.n_evaluated
        try:
            stats.n_cached = self._prefill(prompt_ids, on_progress)
        finally:
            stats.prefill_s = time.perf_counter() - t0
            stats.n_evaluated = self.n_evaluated - evaluated0
        window = prompt_ids if params.repeat_last_n < 0 else prompt_ids[-params.repeat_last_n:] if params.repeat_last_n else []
        for t in window:
            sampler.accept(t)
        limit = max_tokens if max_tokens is not None and max_tokens > 0 else None
        t_dec = time.perf_counter()
        one = ffi.new("int32_t[1]")
        # On a GPU the grammar's next mask is computed on this thread while the device runs
        # the step (tactic_eval_async); on the CPU by a worker thread during the forward pass
        # when a core is left over, else here before sampling (a worker would take a core
        # from the forward pass's threads, which wait for each other).
        mask_during_step = mask is not None and self.device == "cuda"
        mask_beside_step = mask is not None and not mask_during_step and self._spare_core
        tm = ffi.new("double[6]")
        lib.tactic_get_timings(ctx, tm, 6, 1)  # restart the Tactic counters for this generation
        try:
            while True:
                if self._generation != me:
                    raise RuntimeError("another generation started on this Model; this iterator is stale")
                allowed = mask.mask_ptr() if mask is not None else None
                tok = sampler._sample_ptr(self._logits_ptr(-1), self.n_vocab, allowed)
                if self.is_eog(tok):
                    stats.finish_reason = "stop"
                    return
                if mask is not None:
                    mask.accept(tok)
                    if not mask.done() and mask_beside_step:
                        mask.prefetch()  # the next mask is computed while the next eval runs
                sampler.accept(tok)
                stats.n_generated += 1
                stats.tokens.append(tok)
                yield tok
                if self._generation != me:
                    raise RuntimeError("another generation started on this Model; this iterator is stale")
                if mask is not None and mask.done():  # the grammar allows nothing but the end
                    stats.finish_reason = "stop"
                    return
                if limit is not None and stats.n_generated >= limit:
                    stats.finish_reason = "length"
                    return
                if len(self._cached) >= self.n_ctx:
                    stats.finish_reason = "length"
                    return
                if mask_during_step:
                    check(lib.tactic_eval_async(ctx, tok), "eval")
                    self._cached.append(tok)
                    try:
                        mask.compute_now()
                    finally:
                        st = lib.tactic_synchronize(ctx)
                        if st != 0:
                            self._cached.pop()  # the step did not complete: the cache does not hold it
                            check(st, "eval")
                    continue
                one[0] = tok
                st = lib.tactic_eval(ctx, one, 1, 0)
                if st == 0:
                    self._cached.append(tok)
                else:
                    check(st, "eval")
        finally:
            stats.decode_s = time.perf_counter() - t_dec
            if lib.tactic_get_timings(ctx, tm, 6, 0) == 0 and tm[5] >= 0:
                stats.tactic_attended_share = float(tm[5])
            self.last_stats = stats
            if mask is not None:
                mask.close()

    def _text_pieces(self, prompt_ids, max_tokens, params, stop, stats, mask=None, on_progress=None) -> Iterator[str]:
        asm = TextAssembler(stop)
        gen = self._tokens(prompt_ids, max_tokens, params, stats, mask, on_progress)
        try:
            for tok in gen:
                piece = asm.push(self.token_to_piece(tok))
                if piece:
                    yield piece
                if asm.stopped:
                    stats.finish_reason = "stop"
                    return
            rest = asm.flush()
            if asm.stopped:
                stats.finish_reason = "stop"
            if rest:
                yield rest
        finally:
            gen.close()

    def generate(
        self,
        prompt: Union[str, bytes, Sequence[int]],
        max_tokens: Optional[int] = 128,
        *,
        stop: Union[None, str, Sequence[str]] = None,
        stream: bool = False,
        add_bos: Optional[bool] = None,
        special: bool = False,
        grammar=None,
        on_progress: Optional[Callable[[int, int], None]] = None,
        **sampling,
    ) -> Union[str, Iterator[str]]:
        """Complete a prompt (text or token ids).

        Sampling: temperature (0 = greedy), top_k, top_p, min_p, repeat_penalty,
        repeat_last_n, presence_penalty, frequency_penalty, seed.
        max_tokens None or <= 0: until the context is full. stop: strings that end
        the text (not included). stream=True: an iterator of str pieces.
        grammar: a pytactic.Grammar (JSON schema, GBNF, Lark, regex) or GBNF text: the
        output stays inside it, and ends ("stop") only where it is complete.
        After the call, model.last_stats has token counts, times and finish_reason.
        on_progress(done, total): called as the prompt's new tokens are read.
        """
        check_max_tokens(max_tokens)
        params = sampling_params(sampling)
        stops = stop_list(stop)
        ids = self._prompt_ids(prompt, add_bos, special)
        self._check_fits(ids)
        mask = self._grammar_matcher(grammar)
        stats = GenerationStats()
        pieces = self._text_pieces(ids, max_tokens, params, stops, stats, mask, on_progress)
        if stream:
            return pieces
        return "".join(pieces)

    def _grammar_matcher(self, grammar, response_format=None):
        """A fresh grammar.GrammarMatcher for one generation, or None; a malformed
        grammar or schema raises GrammarError here, before any token."""
        if grammar is None and response_format is None:
            return None
        from .grammar import matcher_for

        return matcher_for(self, grammar, response_format)

    # -- OpenAI-style dictionaries -----------------------------------------------

    def create_completion(self, prompt, max_tokens: Optional[int] = 16, *, stop=None, stream: bool = False,
                          grammar=None, **sampling):
        """llama-cpp-python's create_completion: a "text_completion" dict, or with
        stream=True an iterator of chunk dicts."""
        check_max_tokens(max_tokens)
        params = sampling_params(sampling)
        stops = stop_list(stop)
        ids = self._prompt_ids(prompt, None, False)
        self._check_fits(ids)
        mask = self._grammar_matcher(grammar)
        stats = GenerationStats()
        pieces = self._text_pieces(ids, max_tokens, params, stops, stats, mask)
        return openai_format.completion(pieces, stats, self.path, stream)

    __call__ = create_completion

    # -- chat -------------------------------------------------------------------

    @property
    def chat_template(self):
        """The ChatTemplate used by chat() (see pytactic.chat)."""
        if self._template is None:
            from .chat import template_for_model

            self._template = template_for_model(self, self._chat_format)
        return self._template

    def apply_chat_template(self, messages, add_generation_prompt: bool = True, **extra) -> str:
        """The prompt text chat() would evaluate for these messages."""
        return self.chat_template.render(messages, add_generation_prompt=add_generation_prompt, **extra)

    def chat_prompt_ids(self, messages, add_generation_prompt: bool = True, **extra) -> List[int]:
        """Token ids of the rendered chat prompt: control tokens parsed, and BOS added
        only if the template did not already write it."""
        text = self.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, **extra)
        bos = self.token_bos
        bos_text = self.token_to_piece(bos, special=True).decode("utf-8", "replace") if bos >= 0 else ""
        add_bos = not (bos_text and text.startswith(bos_text))
        return self.tokenize(text, add_bos=add_bos, special=True)

    def chat(self, messages, *, max_tokens: Optional[int] = None, stop=None, stream: bool = False,
             tools=None, response_format=None, grammar=None,
             on_progress: Optional[Callable[[int, int], None]] = None, **sampling):
        """llama-cpp-python's create_chat_completion: messages are dicts with "role"
        and "content". Returns a "chat.completion" dict (choices[0]["message"]), or
        with stream=True an iterator of "chat.completion.chunk" dicts whose
        choices[0]["delta"] carries the role first, then content pieces, and the
        last one finish_reason "stop" or "length". response_format: OpenAI's
        {"type": "json_object"} or {"type": "json_schema", "json_schema": {"name": ...,
        "schema": {...}}}; grammar: as generate()'s."""
        check_max_tokens(max_tokens)
        params = sampling_params(sampling)
        stops = stop_list(stop)
        if not isinstance(messages, (list, tuple)) or not all(isinstance(m, dict) for m in messages):
            raise ValueError("messages must be a list of dicts with 'role' and 'content'")
        extra = {"tools": tools} if tools is not None else {}
        ids = self.chat_prompt_ids(messages, **extra)
        self._check_fits(ids)
        mask = self._grammar_matcher(grammar, response_format)
        stats = GenerationStats()
        pieces = self._text_pieces(ids, max_tokens, params, stops, stats, mask, on_progress)
        return openai_format.chat_completion(pieces, stats, self.path, stream)

    create_chat_completion = chat

    # -- saved state --------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """Identifies the model file (sessions and caches are keyed by it)."""
        if getattr(self, "_fingerprint", None) is None:
            from .session import model_fingerprint

            self._m()
            self._fingerprint = model_fingerprint(self.path, self.info)
        return self._fingerprint

    def save_state(self):
        """An in-memory snapshot of the evaluated tokens, their K/V and the last logits
        (a pytactic.session.ModelState), as llama-cpp-python's save_state."""
        from .session import capture

        return capture(self)

    def load_state(self, state) -> None:
        """Restore a save_state() snapshot of this model with this n_ctx."""
        from .session import restore

        restore(self, state)

    def save_session(self, path, meta: Optional[dict] = None) -> int:
        """Write the evaluated state to a file (atomically; versioned, checksummed).
        Returns the bytes written."""
        from .session import save_file

        return save_file(self, path, meta)

    def load_session(self, path) -> dict:
        """Restore a save_session() file; returns its header. Raises CorruptSessionError
        (not a session, truncated, checksum) or SessionMismatchError (another model or
        n_ctx); the model is unchanged and usable then."""
        from .session import load_file

        return load_file(self, path)

    # -- hub --------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, repo_id: str, filename: str, **kwargs) -> "Model":
        """Download (or find in the Hugging Face cache) repo_id/filename and load it.
        See pytactic.hub.from_pretrained for the download arguments."""
        from .hub import from_pretrained

        return from_pretrained(repo_id, filename, model_class=cls, **kwargs)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"n_ctx={self.n_ctx}"
        return f"<pytactic.Model {self.path!r} {state}>"
