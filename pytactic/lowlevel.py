"""A thin wrapper over the raw C ABI (load, eval, logits by token ids) for tests,
benchmarks and evaluation scripts that need the runtime without tokenizers, chat or
sampling; the one place they all open handles. Users want pytactic.Model."""

import numpy as np

from ._native import check, ffi, lib


def load_model(path, owned=True, **fields):
    """A tactic_model handle; fields set tactic_model_params (vocab_only, use_mmap, ...).
    owned: freed when garbage-collected; owned=False hands back a raw handle the caller
    frees with tactic_model_free (tests of the free order need that)."""
    p = lib.tactic_model_default_params()
    for k, v in fields.items():
        setattr(p, k, int(v) if isinstance(v, bool) else v)
    out = ffi.new("tactic_model **")
    check(lib.tactic_model_load(str(path).encode(), ffi.new("tactic_model_params *", p), out), "load")
    return ffi.gc(out[0], lib.tactic_model_free) if owned else out[0]


def new_context(model, owned=True, **fields):
    """A tactic_context on model; fields set tactic_context_params (n_ctx, n_threads,
    attention, ...). owned as for load_model."""
    p = lib.tactic_context_default_params()
    for k, v in fields.items():
        setattr(p, k, v)
    out = ffi.new("tactic_context **")
    check(lib.tactic_context_new(model, ffi.new("tactic_context_params *", p), out), "context")
    return ffi.gc(out[0], lib.tactic_context_free) if owned else out[0]


def model_info(model):
    info = ffi.new("tactic_model_info *")
    check(lib.tactic_model_get_info(model, info))
    return info


def logits_rows(ctx, n_vocab):
    """The logits rows of the last eval, as a float32 array [rows, n_vocab]."""
    rows = lib.tactic_get_n_logits_rows(ctx)
    ptr = lib.tactic_get_logits(ctx, 0)
    return np.frombuffer(ffi.buffer(ptr, rows * n_vocab * 4), dtype=np.float32).reshape(rows, n_vocab).copy()


class NativeSession:
    """A model and one context on it, freed by close() (or the with block)."""

    def __init__(self, path, n_ctx=4096, n_threads=2, attention=1, **ctx_fields):
        self._m = load_model(path, owned=False)
        try:
            info = model_info(self._m)
            self.n_vocab = info.n_vocab
            self.n_layer = info.n_layer
            self._c = new_context(self._m, owned=False, n_ctx=n_ctx, n_threads=n_threads, attention=attention,
                                  **ctx_fields)
        except BaseException:  # the model handle must not leak when the context fails
            lib.tactic_model_free(self._m)
            self._m = None
            raise

    @property
    def model(self):
        return self._m

    @property
    def ctx(self):
        return self._c

    def reset(self):
        check(lib.tactic_context_truncate(self._c, 0))

    def eval(self, ids, logits_all=False):
        """Evaluates ids after the cache; returns logits rows as a float32 array [rows, n_vocab]."""
        arr = ffi.new("int32_t[]", list(ids))
        check(lib.tactic_eval(self._c, arr, len(ids), 1 if logits_all else 0), "eval")
        return logits_rows(self._c, self.n_vocab)

    def timings(self, reset=False):
        """Seconds: prefill, clustering, decode, decode attention (global layers), selection."""
        out = ffi.new("double[5]")
        check(lib.tactic_get_timings(self._c, out, 5, 1 if reset else 0))
        return dict(zip(["prefill", "clustering", "decode", "decode_attention", "selection"], list(out)))

    def close(self):
        if self._m is not None:
            lib.tactic_context_free(self._c)
            lib.tactic_model_free(self._m)
            self._c = self._m = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def log_softmax(logits):
    x = np.asarray(logits, dtype=np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - (np.log(np.exp(x - m).sum(axis=-1, keepdims=True)) + m)
