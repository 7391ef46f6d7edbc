"""on_progress(done, total) on eval, generate and chat: called batch by batch on the
caller's thread; Ctrl-C during a long prompt cancels it and the model stays usable."""

import _thread
import signal
import threading

import pytest

from pytactic import Model

N_THREADS = 2
TEXT = "Numbers: " + ", ".join(str(i) for i in range(150)) + "."


@pytest.fixture(scope="module")
def model(gemma_path):
    with Model(gemma_path, n_ctx=2048, n_batch=128, n_threads=N_THREADS) as m:
        yield m


def test_eval_reports_progress_batch_by_batch(model):
    ids = model.tokenize(TEXT)
    calls = []
    model.reset()
    model.eval(ids, on_progress=lambda d, t: calls.append((d, t, threading.get_ident())))
    n = len(ids)
    assert n > 3 * 128
    expected = [0] + list(range(128, n, 128)) + [n]
    assert [d for d, _, _ in calls] == expected
    assert all(t == n for _, t, _ in calls)
    assert {tid for _, _, tid in calls} == {threading.get_ident()}  # the caller's thread
    assert model.n_past == n


def test_generate_and_chat_report_only_the_new_tokens(model):
    model.reset()
    ids = model.tokenize(TEXT)
    calls = []
    model.generate(ids, 2, temperature=0, on_progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (len(ids), len(ids))
    calls.clear()
    model.generate(ids + model.tokenize(" And more", add_bos=False), 2, temperature=0,
                   on_progress=lambda d, t: calls.append((d, t)))
    st = model.last_stats
    assert calls[-1][1] == st.n_prompt - st.n_cached == st.n_evaluated  # only what was new
    calls.clear()
    model.chat([{"role": "user", "content": TEXT}], max_tokens=2, temperature=0,
               on_progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1][0] == calls[-1][1] == model.last_stats.n_evaluated


@pytest.fixture
def python_sigint():
    # Python's own SIGINT handler: a shell may start background jobs with SIGINT ignored,
    # and then interrupt_main does nothing.
    prev = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, prev)


def test_ctrl_c_during_a_long_prompt_cancels_and_the_model_stays_usable(model, gemma_path, python_sigint):
    model.reset()
    ids = model.tokenize(TEXT)

    def progress(done, total):
        if done == 128:  # Ctrl-C lands while the next batch is being evaluated
            threading.Timer(0.05, _thread.interrupt_main).start()

    with pytest.raises(KeyboardInterrupt):
        model.eval(ids, on_progress=progress)
    assert 128 <= model.n_past < len(ids)
    assert model.cached_tokens == ids[: model.n_past]  # bookkeeping in step with the cache
    short = model.tokenize("The capital of France is")
    got = model.generate(short, 6, temperature=0)
    with Model(gemma_path, n_ctx=2048, n_batch=128, n_threads=N_THREADS) as fresh:
        assert got == fresh.generate(short, 6, temperature=0)
