"""Handles freed while another thread still uses them, or in the 'wrong' order, must
not crash: a context free waits for (and cancels) an in-flight eval, and a context
keeps its model alive."""

import threading
import time

from pytactic._native import check, ffi, lib
from pytactic.lowlevel import load_model, new_context


# Raw handles (owned=False): these tests free them themselves, in a chosen order.
def _load(path):
    return load_model(path, owned=False)


def _context(model, n_ctx=4096):
    return new_context(model, owned=False, n_ctx=n_ctx, n_threads=2)


def test_context_free_during_eval_waits_for_it(gemma_path):
    model = _load(gemma_path)
    try:
        ctx = _context(model)
        ids = ffi.new("int32_t[]", list(range(100, 2100)))
        status = {}
        started = threading.Event()

        def run():
            started.set()
            status["st"] = lib.tactic_eval(ctx, ids, 2000, 0)

        t = threading.Thread(target=run)
        t.start()
        started.wait()
        time.sleep(0.2)  # well inside a 2000-token prefill (seconds on a CPU)
        lib.tactic_context_free(ctx)  # must cancel the eval and block until it has stopped
        # Once the free has returned, the eval call has returned too: its thread only
        # needs the GIL to finish (a free that did not wait would leave it computing).
        t.join(2.0)
        assert not t.is_alive(), "the eval still runs after tactic_context_free returned"
        assert status["st"] == lib.TACTIC_ERR_CANCELLED  # it was in flight and the free stopped it
    finally:
        lib.tactic_model_free(model)


def test_context_outlives_freed_model(gemma_path):
    model = _load(gemma_path)
    ctx = _context(model, n_ctx=64)
    lib.tactic_model_free(model)
    check(lib.tactic_eval(ctx, ffi.new("int32_t[]", [2, 818, 5279]), 3, 0))
    assert lib.tactic_get_logits(ctx, -1) != ffi.NULL
    lib.tactic_context_free(ctx)
