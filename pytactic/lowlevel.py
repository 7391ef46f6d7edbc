"""A thin wrapper over the raw C ABI (load, eval, logits by token ids) for tests,
benchmarks and evaluation scripts that need the runtime without tokenizers, chat or
sampling. Users want pytactic.Model."""

import numpy as np

from ._native import check, ffi, lib


class NativeSession:
    def __init__(self, path, n_ctx=4096, n_threads=2, attention=1, **ctx_fields):
        self._m = ffi.new("tactic_model**")
        check(lib.tactic_model_load(str(path).encode(), ffi.NULL, self._m), "load")
        info = ffi.new("tactic_model_info*")
        check(lib.tactic_model_get_info(self._m[0], info))
        self.n_vocab = info.n_vocab
        self.n_layer = info.n_layer
        p = lib.tactic_context_default_params()
        p.n_ctx, p.n_threads, p.attention = n_ctx, n_threads, attention
        for k, v in ctx_fields.items():
            setattr(p, k, v)
        self._c = ffi.new("tactic_context**")
        check(lib.tactic_context_new(self._m[0], ffi.new("tactic_context_params*", p), self._c), "context")

    @property
    def ctx(self):
        return self._c[0]

    def reset(self):
        check(lib.tactic_context_truncate(self._c[0], 0))

    def eval(self, ids, logits_all=False):
        """Evaluates ids after the cache; returns logits rows as a float32 array [rows, n_vocab]."""
        arr = ffi.new("int32_t[]", list(ids))
        check(lib.tactic_eval(self._c[0], arr, len(ids), 1 if logits_all else 0), "eval")
        rows = lib.tactic_get_n_logits_rows(self._c[0])
        ptr = lib.tactic_get_logits(self._c[0], 0)
        return np.frombuffer(ffi.buffer(ptr, rows * self.n_vocab * 4), dtype=np.float32).reshape(rows, self.n_vocab).copy()

    def timings(self, reset=False):
        """Seconds: prefill, clustering, decode, decode attention (global layers), selection."""
        out = ffi.new("double[5]")
        check(lib.tactic_get_timings(self._c[0], out, 5, 1 if reset else 0))
        return dict(zip(["prefill", "clustering", "decode", "decode_attention", "selection"], list(out)))

    def close(self):
        if self._c is not None:
            lib.tactic_context_free(self._c[0])
            lib.tactic_model_free(self._m[0])
            self._c = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def log_softmax(logits):
    x = np.asarray(logits, dtype=np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - (np.log(np.exp(x - m).sum(axis=-1, keepdims=True)) + m)
