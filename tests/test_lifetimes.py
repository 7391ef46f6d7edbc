"""Handles freed while another thread still uses them, or in the 'wrong' order, must
not crash: a context free waits for (and cancels) an in-flight eval, and a context
keeps its model alive."""

import threading
import time

from pytactic._native import check, ffi, lib


def _load(path):
    m = ffi.new("tactic_model**")
    check(lib.tactic_model_load(path.encode(), ffi.NULL, m))
    return m[0]


def _context(model, n_ctx=4096):
    p = lib.tactic_context_default_params()
    p.n_ctx, p.n_threads = n_ctx, 2
    c = ffi.new("tactic_context**")
    check(lib.tactic_context_new(model, ffi.new("tactic_context_params*", p), c))
    return c[0]


def test_context_free_during_eval_waits_for_it(gemma_path):
    model = _load(gemma_path)
    try:
        ctx = _context(model)
        ids = ffi.new("int32_t[]", list(range(100, 2100)))
        status = {}
        t = threading.Thread(target=lambda: status.setdefault("st", lib.tactic_eval(ctx, ids, 2000, 0)))
        t.start()
        time.sleep(0.2)
        lib.tactic_context_free(ctx)  # must block until the eval has stopped
        assert not t.is_alive() or t.join(5) is None
        assert status["st"] in (0, 7)  # finished, or cancelled by the free
    finally:
        lib.tactic_model_free(model)


def test_context_outlives_freed_model(gemma_path):
    model = _load(gemma_path)
    ctx = _context(model, n_ctx=64)
    lib.tactic_model_free(model)
    check(lib.tactic_eval(ctx, ffi.new("int32_t[]", [2, 818, 5279]), 3, 0))
    assert lib.tactic_get_logits(ctx, -1) != ffi.NULL
    lib.tactic_context_free(ctx)
