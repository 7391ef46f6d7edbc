"""Hardening: fuzz-found inputs, memory refusals, argument ranges, threads.

- Every file in tests/data/fuzz_corpus (inputs the libFuzzer run found interesting,
  see scripts/fuzz_gguf.sh) loads or raises a typed pytactic error: never a crash.
- A model or context that would not fit in memory is refused before allocating, with
  the numbers in the message (TACTIC_MEMORY_LIMIT stands in for a small machine).
- Out-of-range context and sampling parameters are ValueErrors.
- One context used from two threads at once either runs the calls one after the other
  or raises BusyError, and its state stays exact; two models work independently;
  the GIL is released during evaluation.
"""

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gguf_builders as gb  # noqa: E402
from pytactic import errors, lowlevel  # noqa: E402
from pytactic._native import check, ffi, lib  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "data" / "fuzz_corpus"


# ---- the C ABI through pytactic.lowlevel (handles freed when collected) ---------------

def load(path, vocab_only=False, use_mmap=True):
    return lowlevel.load_model(path, vocab_only=vocab_only, use_mmap=use_mmap)


def new_context(model, **kw):
    return lowlevel.new_context(model, **{"n_threads": 1, "attention": lib.TACTIC_ATTN_FULL, **kw})


def n_vocab(model):
    return lowlevel.model_info(model).n_vocab


def eval_tokens(ctx, tokens):
    arr = ffi.new("int32_t[]", list(tokens))
    check(lib.tactic_eval(ctx, arr, len(tokens), 0), "eval")


def run_threads(target, args_list, timeout=300):
    """Run target(*args) in one thread per args and re-raise, in the calling thread, the
    first exception any of them raised (a bare thread would only print it)."""
    errors_seen = []

    def wrapped(*args):
        try:
            target(*args)
        except BaseException as e:  # noqa: B036 - handed to the main thread below
            errors_seen.append(e)

    threads = [threading.Thread(target=wrapped, args=args) for args in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), f"a worker thread still runs after {timeout} s"
    if errors_seen:
        raise errors_seen[0]


def last_logits(ctx, nv):
    return np.frombuffer(ffi.buffer(lib.tactic_get_logits(ctx, -1), nv * 4), np.float32).copy()


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("tiny") / "tiny-gemma3.gguf"
    p.write_bytes(gb.tiny_model("gemma3", "llama", gb.GGML_Q8_0).build())
    return p


# ---- fuzz corpus ----------------------------------------------------------------------

def corpus_files():
    return sorted(CORPUS.glob("*")) if CORPUS.is_dir() else []


def test_corpus_is_small():
    files = corpus_files()
    assert files, "tests/data/fuzz_corpus is empty"
    assert sum(f.stat().st_size for f in files) < 300_000


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_fuzz_corpus_input(path):
    """Each input parses, or fails with a typed error; never crashes the process."""
    out = ffi.new("tactic_gguf **")
    st = lib.tactic_gguf_open(str(path).encode(), out)
    if st == 0:
        lib.tactic_gguf_free(out[0])
    else:
        with pytest.raises(errors.TacticError):
            check(st)
    for vocab_only in (False, True):
        try:
            m = load(path, vocab_only=vocab_only)
        except errors.TacticError as e:
            assert not isinstance(e, errors.InternalError), str(e)
            assert str(e)
            continue
        if not vocab_only:
            try:
                ctx = new_context(m, n_ctx=16)
                eval_tokens(ctx, [0, min(1, n_vocab(m) - 1)])
            except errors.TacticError as e:
                assert not isinstance(e, errors.InternalError), str(e)


# ---- memory refusals ----------------------------------------------------------------------

def test_model_refused_when_memory_is_short(gemma_path, monkeypatch):
    monkeypatch.setenv("TACTIC_MEMORY_LIMIT", "100M")
    for use_mmap in (True, False):
        with pytest.raises(errors.OutOfMemoryError) as e:
            load(gemma_path, use_mmap=use_mmap)
        msg = str(e.value)
        assert "needs" in msg and "MiB" in msg and "100.0 MiB" in msg, msg
        assert isinstance(e.value, MemoryError)


def test_context_refused_when_memory_is_short(gemma_path, monkeypatch):
    m = load(gemma_path)
    monkeypatch.setenv("TACTIC_MEMORY_LIMIT", "400M")
    # Gemma 3 270M: 18 layers x 1 KV head x 256 x 2 (K, V) x f16 = 18 KiB per token.
    # Sliding-window layers kept whole (swa_full): 576 MiB at 32K.
    with pytest.raises(errors.OutOfMemoryError, match=r"a context of 32768 tokens \(KV cache 576.0 MiB"):
        new_context(m, n_ctx=32768, swa_full=1)
    new_context(m, n_ctx=1024)  # 18 MiB: fits
    # Rings of window + n_batch for the 15 sliding-window layers: 3 x 32768 + 15 x 1024 positions.
    monkeypatch.setenv("TACTIC_MEMORY_LIMIT", "100M")
    with pytest.raises(errors.OutOfMemoryError, match=r"a context of 32768 tokens \(KV cache 111.0 MiB"):
        new_context(m, n_ctx=32768)
    monkeypatch.delenv("TACTIC_MEMORY_LIMIT")
    new_context(m, n_ctx=32768)


def test_logits_of_every_row_refused(tiny_path, monkeypatch):
    m = load(tiny_path)
    ctx = new_context(m, n_ctx=256)
    monkeypatch.setenv("TACTIC_MEMORY_LIMIT", "4K")
    toks = ffi.new("int32_t[]", [1] * 200)
    with pytest.raises(errors.OutOfMemoryError, match="logits of 200 positions"):
        check(lib.tactic_eval(ctx, toks, 200, 1))
    assert lib.tactic_context_n_past(ctx) == 0  # refused before anything ran


def test_metadata_budget(tmp_path, monkeypatch):
    """A small file asking for millions of metadata values is refused, not allocated."""
    b = gb.GGUFBuilder()
    b.add("many", gb.ARRAY, (gb.U8, [0] * (3 << 20)))
    p = tmp_path / "many.gguf"
    p.write_bytes(b.build())
    monkeypatch.setenv("TACTIC_MEMORY_LIMIT", "64M")
    out = ffi.new("tactic_gguf **")
    with pytest.raises(errors.OutOfMemoryError, match="metadata"):
        check(lib.tactic_gguf_open(str(p).encode(), out))


# ---- argument ranges ----------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [("n_ctx", -1), ("n_ctx", 1 << 25), ("n_threads", -1), ("n_threads", 100000),
                                         ("n_batch", -5), ("attention", 7), ("tactic_p", 0.0), ("tactic_p", 1.5),
                                         ("tactic_p", float("nan")), ("cluster_size", 0), ("n_sink", -1),
                                         ("n_recent", -1), ("tactic_min_ctx", -1)])
def test_context_params_out_of_range(tiny_path, field, value):
    m = load(tiny_path)
    with pytest.raises(errors.InvalidArgumentError) as e:
        new_context(m, **{field: value})
    assert isinstance(e.value, ValueError)


def test_eval_arguments(tiny_path):
    m = load(tiny_path)
    ctx = new_context(m, n_ctx=8)
    with pytest.raises(errors.InvalidArgumentError, match="outside the vocabulary"):
        eval_tokens(ctx, [n_vocab(m)])
    with pytest.raises(errors.InvalidArgumentError):
        eval_tokens(ctx, [-1])
    with pytest.raises(errors.ContextLengthError, match="do not fit"):
        eval_tokens(ctx, [1] * 9)
    eval_tokens(ctx, [1] * 8)
    with pytest.raises(errors.ContextLengthError):
        eval_tokens(ctx, [1])
    with pytest.raises(errors.InvalidArgumentError):
        check(lib.tactic_context_truncate(ctx, 9))


def _sampler_new(**kw):
    p = lib.tactic_sampler_default_params()
    for k, v in kw.items():
        setattr(p, k, v)
    out = ffi.new("tactic_sampler **")
    check(lib.tactic_sampler_new(ffi.new("tactic_sampler_params *", p), out), "sampler")
    return ffi.gc(out[0], lib.tactic_sampler_free)


@pytest.mark.parametrize("field,value", [("top_p", 1.5), ("top_p", -0.1), ("min_p", -0.5), ("min_p", 2.0),
                                         ("repeat_penalty", -1.0), ("repeat_last_n", -2),
                                         ("temperature", float("nan")), ("top_p", float("nan"))])
def test_sampler_params_out_of_range(field, value):
    with pytest.raises(errors.InvalidArgumentError) as e:
        _sampler_new(**{field: value})
    assert isinstance(e.value, ValueError)


# ---- threads ------------------------------------------------------------------------------

def test_one_context_two_threads(tiny_path):
    """Concurrent evals on one context: each call either runs whole or gets BusyError,
    and the cache ends exactly as if the successful calls had run one by one."""
    m = load(tiny_path)
    nv = n_vocab(m)
    ctx = new_context(m, n_ctx=256)
    done, busy = [], []
    start = threading.Barrier(2)

    def worker(tok):
        start.wait()
        for _ in range(40):
            try:
                eval_tokens(ctx, [tok, tok])
                done.append(tok)
            except errors.BusyError as e:
                assert "in use by another thread" in str(e)
                busy.append(tok)

    run_threads(worker, [(5,), (6,)])
    assert lib.tactic_context_n_past(ctx) == 2 * len(done)
    # Replaying the successful calls in their order gives the same logits.
    ref = new_context(m, n_ctx=256)
    for tok in done:
        eval_tokens(ref, [tok, tok])
    np.testing.assert_array_equal(last_logits(ctx, nv), last_logits(ref, nv))


def test_two_models_independent(tiny_path, tmp_path):
    """Two different models in one process, evaluated at the same time in two threads,
    give the same logits as when run alone."""
    other = tmp_path / "other.gguf"
    other.write_bytes(gb.tiny_model("llama", "gpt2", gb.GGML_F16, seed=3, n_layer=1).build())
    models = [load(tiny_path), load(other)]
    prompts = [[1, 5, 9, 12, 3], [4, 8, 15, 16, 23]]

    def run(i):
        ctx = new_context(models[i], n_ctx=64)
        for t in prompts[i]:
            eval_tokens(ctx, [t])
        return last_logits(ctx, n_vocab(models[i]))

    alone = [run(0), run(1)]
    results = [None, None]

    def worker(i):
        for _ in range(20):
            r = run(i)
            if results[i] is not None:
                np.testing.assert_array_equal(r, results[i])
            results[i] = r

    run_threads(worker, [(0,), (1,)])
    for i in (0, 1):
        np.testing.assert_array_equal(results[i], alone[i])


def test_gil_released_during_eval(gemma_path):
    """While one thread evaluates the real model, Python code in another keeps running."""
    m = load(gemma_path)
    ctx = new_context(m, n_ctx=64)
    span = {}

    def work():
        span["start"] = time.perf_counter()
        eval_tokens(ctx, list(range(2, 34)))
        span["end"] = time.perf_counter()

    t = threading.Thread(target=work)
    t.start()
    samples = []  # when this thread ran Python code
    while t.is_alive():
        samples.append(time.perf_counter())
        time.sleep(0.001)
    t.join()
    start, end = span["start"], span["end"]
    # With the GIL held by the eval, this thread could run no Python code between the
    # call and its return: no sample could fall in the middle 80 % of the eval (which
    # lasts far longer than the interpreter's 5 ms switch interval).
    margin = 0.1 * (end - start)
    assert end - start > 0.05, f"the eval took {end - start:.3f} s: too short to tell"
    inside = [s for s in samples if start + margin < s < end - margin]
    assert len(inside) >= 3, (len(inside), len(samples), end - start)


# ---- leaks ----------------------------------------------------------------------------------

def _trimmed_rss_mib():
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed heap goes back: what remains is live
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def _load_cycle(path, n):
    for _ in range(n):
        m = load(path)
        ctx = new_context(m, n_ctx=32)
        eval_tokens(ctx, [1, 2])
        del ctx, m


def test_load_free_does_not_leak(tiny_path, gemma_path):
    """Loading and freeing (with a context and an eval) leaves live memory flat;
    scripts/soak.py runs the 200-cycle version on the real model."""
    for path, n, slack in ((tiny_path, 100, 4.0), (gemma_path, 10, 8.0)):
        _load_cycle(path, 3)
        before = _trimmed_rss_mib()
        _load_cycle(path, n)
        after = _trimmed_rss_mib()
        assert after - before < slack, (path, before, after)


def _tokenize(model, text):
    b = text.encode()
    out = ffi.new("int32_t[]", 4 * len(b) + 8)
    n = ffi.new("int32_t *")
    check(lib.tactic_tokenize(model, b, len(b), 1, 0, out, 4 * len(b) + 8, n), "tokenize")
    return list(out[0:n[0]])


def test_one_model_shared_by_threads(gemma_path):
    """Two contexts on one model and tokenization, from several threads at once, give
    what they give alone (the model and its tokenizer are read-only once loaded)."""
    m = load(gemma_path)
    nv = n_vocab(m)
    texts = ["The quick brown fox jumps over the lazy dog. " * 8, "Ünïcödé — 東京 🚀 <start_of_turn>user\n" * 8]
    want_tokens = [_tokenize(m, t) for t in texts]
    prompts = [want_tokens[0][:12], want_tokens[1][:12]]

    def run(i):
        ctx = new_context(m, n_ctx=32)
        eval_tokens(ctx, prompts[i])
        return last_logits(ctx, nv)

    want_logits = [run(0), run(1)]

    def worker(i):
        for _ in range(3):
            np.testing.assert_array_equal(run(i), want_logits[i])
        for _ in range(30):
            assert _tokenize(m, texts[i]) == want_tokens[i]

    run_threads(worker, [(i % 2,) for i in range(4)])


# ---- the Python API (pytactic.Model) ---------------------------------------------------------

def _model_cls():
    from pytactic.model import Model

    return Model


@pytest.mark.parametrize("kw", [dict(n_ctx=-1), dict(n_ctx=1 << 30), dict(n_threads=-1), dict(n_threads=10**6),
                                dict(n_batch=0), dict(n_batch=-3), dict(tactic_p=0.0), dict(tactic_p=1.5),
                                dict(tactic_p=float("nan")), dict(cluster_size=0), dict(attention="sparse"),
                                dict(n_ctx="4096")])
def test_model_arguments_out_of_range(tiny_path, kw):
    Model = _model_cls()
    with pytest.raises(ValueError):
        Model(tiny_path, **kw)


@pytest.mark.parametrize("kw", [dict(temperature=float("nan")), dict(top_p=1.5), dict(top_p=-0.1), dict(min_p=2.0),
                                dict(min_p=-1.0), dict(repeat_penalty=0.0), dict(repeat_penalty=-1.0),
                                dict(repeat_last_n=-2), dict(top_k=1.5), dict(temperature=float("inf"))])
def test_sampling_arguments_out_of_range(tiny_path, kw):
    Model = _model_cls()
    with Model(tiny_path, n_ctx=64) as fresh:
        want = fresh.generate([1, 5, 6], max_tokens=2, temperature=0)
    assert want
    with Model(tiny_path, n_ctx=64) as m:
        with pytest.raises(ValueError):
            m.generate([1, 5, 6], max_tokens=2, **kw)
        # still usable: greedy generation gives what a fresh model gives
        assert m.generate([1, 5, 6], max_tokens=2, temperature=0) == want


def test_model_memory_refusals(gemma_path, monkeypatch):
    Model = _model_cls()
    monkeypatch.setenv("TACTIC_MEMORY_LIMIT", "100M")
    with pytest.raises(errors.OutOfMemoryError, match="needs .* but only 100.0 MiB"):
        Model(gemma_path)
    monkeypatch.setenv("TACTIC_MEMORY_LIMIT", "400M")
    with pytest.raises(MemoryError, match="a context of 32768 tokens"):
        Model(gemma_path, n_ctx=32768, swa_full=True)  # 576 MiB of KV: sliding-window layers whole
    # The default n_ctx is the training context capped by memory: it loads, smaller.
    with Model(gemma_path, swa_full=True) as m:  # at most half of the 400M for the KV cache
        assert 4096 < m.n_ctx < 32768 and m.kv_memory()["reserved"] <= 200 * 2**20


def test_model_two_threads(gemma_path):
    """Two threads generating on one Model at once: each call returns what it returns
    alone or raises a clear error (BusyError, or RuntimeError for a generation another
    started over); afterwards the Model still generates exactly."""
    Model = _model_cls()
    prompts = ["The capital of France is", "One, two, three, four,"]
    with Model(gemma_path, n_ctx=256, n_threads=1) as m:
        want = [m.generate(p, max_tokens=6, temperature=0) for p in prompts]
        outcomes = []

        def worker(i):
            for _ in range(4):
                try:
                    got = m.generate(prompts[i], max_tokens=6, temperature=0)
                    outcomes.append(("ok", i, got))
                except (errors.BusyError, RuntimeError) as e:
                    assert str(e)
                    outcomes.append(("error", i, type(e).__name__))

        run_threads(worker, [(0,), (1,)])
        wrong = [(i, got) for kind, i, got in outcomes if kind == "ok" and got != want[i]]
        assert not wrong, (wrong, want)
        assert [m.generate(p, max_tokens=6, temperature=0) for p in prompts] == want
        assert m.n_past == len(m.cached_tokens)


def test_two_model_objects_in_threads(gemma_path, tiny_path):
    Model = _model_cls()
    with Model(gemma_path, n_ctx=128, n_threads=1) as a, Model(tiny_path, n_ctx=64, n_threads=1) as b:
        want = [a.generate("Hello", max_tokens=5, temperature=0), b.generate([1, 7, 8], max_tokens=5, temperature=0)]
        got = [None, None]

        def run(i):
            got[i] = [a, b][i].generate(["Hello", [1, 7, 8]][i], max_tokens=5, temperature=0)

        run_threads(run, [(0,), (1,)])
        assert got == want


def test_native_session_frees_the_model_when_the_context_fails(tiny_path, monkeypatch):
    """pytactic.lowlevel.NativeSession: a refused context must not leak the model."""
    real, freed = lowlevel.lib, []

    class Spy:
        def __getattr__(self, name):
            return getattr(real, name)

        def tactic_model_free(self, m):
            freed.append(m)
            real.tactic_model_free(m)

    monkeypatch.setattr(lowlevel, "lib", Spy())
    with pytest.raises(errors.InvalidArgumentError):
        lowlevel.NativeSession(tiny_path, n_ctx=-5)
    assert len(freed) == 1
