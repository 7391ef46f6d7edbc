"""Saved state: save_session/load_session and save_state/load_state give back the
same logits and the same greedy continuation (full and Tactic attention); damaged,
truncated and foreign files raise typed errors and leave the model usable."""

import dataclasses
import os

import numpy as np
import pytest

from pytactic import Model
from pytactic.errors import CorruptSessionError, SessionError, SessionMismatchError

N_THREADS = 2
TEXT = ("The history of the printing press begins with movable type in China and Korea; "
        "in Europe, Gutenberg's press of about 1440 spread across the continent within decades. ") * 20


def _prompt(model):
    ids = model.tokenize(TEXT)
    assert len(ids) > 600  # longer than a sliding window (512): the rings have wrapped
    return ids


@pytest.mark.parametrize("attention", ["full", "tactic"])
def test_round_trip_gives_identical_logits_and_continuation(gemma_path, tmp_path, attention):
    kw = dict(n_ctx=2048, n_batch=128, n_threads=N_THREADS, attention=attention, seed=7)
    path = tmp_path / "s.kv"
    with Model(gemma_path, **kw) as a:
        ids = _prompt(a)
        a.eval(ids)
        logits = a.logits()
        a.save_session(path)
        expect = a.generate(ids, 20, temperature=0)  # continues from the same cache
        expect_tokens = list(a.last_stats.tokens)
    with Model(gemma_path, **kw) as b:
        b.generate("Something else entirely.", 3, temperature=0)  # a dirty cache first
        b.load_session(path)
        assert b.cached_tokens == ids and b.n_past == len(ids)
        np.testing.assert_array_equal(b.logits(), logits)
        got = b.generate(ids, 20, temperature=0)
        assert b.last_stats.n_evaluated == 1  # only the last token, for its logits
        assert got == expect and b.last_stats.tokens == expect_tokens
        # The next decode step's logits too (Tactic: clusters rebuilt from the keys).
    with Model(gemma_path, **kw) as c:
        c.eval(ids)
        c.eval([expect_tokens[0]])
        step = c.logits()
    with Model(gemma_path, **kw) as d:
        d.load_session(path)
        d.eval([expect_tokens[0]])
        np.testing.assert_array_equal(d.logits(), step)


def test_tactic_clusters_travel_with_the_session(gemma_path, tmp_path):
    # Clusters built as the tokens came (the prompt's, then a block of decoded tokens)
    # are not what a fresh clustering of the same keys gives, so a restored model attends
    # exactly what the original does only if the session carried the clusters themselves.
    kw = dict(n_ctx=2048, n_batch=128, n_threads=N_THREADS, attention="tactic", seed=7)
    path = tmp_path / "s.kv"
    with Model(gemma_path, **kw) as a:
        a.generate(_prompt(a), 320, temperature=0)  # > 256 decoded tokens: a block is appended
        assert a.last_stats.n_generated == 320
        cached, feed = a.cached_tokens, (a.last_stats.tokens[-1], 1000, 2000)
        a.save_session(path)
        steps = []
        for t in feed:
            a.eval([t])
            steps.append(a.logits())
    with Model(gemma_path, **kw) as b:
        b.load_session(path)
        assert b.cached_tokens == cached
        for t, want in zip(feed, steps):
            b.eval([t])
            np.testing.assert_array_equal(b.logits(), want)


def test_damaged_tactic_clusters_are_refused_natively(gemma_path):
    # The native blob has no checksum of its own (files do), so its reader must check
    # every index the decode path follows. Truncations and random byte flips inside the
    # Tactic section: each is refused (CorruptSessionError) or restores a state that
    # decodes (flipped centroid bits are still clusters); none crashes the process.
    kw = dict(n_ctx=2048, n_batch=128, n_threads=N_THREADS, attention="tactic", seed=7)
    prompt = "The capital of France is"
    with Model(gemma_path, **kw) as m:
        m.generate(_prompt(m), 4, temperature=0)
        st = m.save_state()
        at = st.state.rfind(b"TCL1")
        assert at > 0 and len(st.state) - at > 10_000  # the clusters travel
        rng = np.random.default_rng(0)
        refused = 0
        for i in range(100):
            blob = bytearray(st.state)
            if i < 20:
                blob = blob[: at + int(rng.integers(0, len(blob) - at))]
            else:
                for _ in range(4):
                    k = at + int(rng.integers(0, len(blob) - at))
                    blob[k] ^= int(rng.integers(1, 256))
            try:
                m.load_state(dataclasses.replace(st, state=bytes(blob)))
            except CorruptSessionError:
                refused += 1
                continue
            m.eval([1000])  # a restored state decodes
        assert refused >= 20  # every truncation at least
        m.reset()
        got = m.generate(prompt, 6, temperature=0)
    with Model(gemma_path, **kw) as fresh:
        assert got == fresh.generate(prompt, 6, temperature=0)


def test_in_memory_state(gemma_path):
    with Model(gemma_path, n_ctx=2048, n_threads=N_THREADS) as m:
        ids = _prompt(m)
        m.eval(ids)
        st = m.save_state()
        logits = m.logits()
        expect = m.generate(ids, 8, temperature=0)
        m.reset()
        m.load_state(st)
        np.testing.assert_array_equal(m.logits(), logits)
        assert m.generate(ids, 8, temperature=0) == expect


def _saved(gemma_path, tmp_path, **kw):
    path = tmp_path / "s.kv"
    with Model(gemma_path, n_ctx=2048, n_threads=N_THREADS, **kw) as m:
        m.eval(m.tokenize("A short prompt for a saved session."))
        m.save_session(path)
    return path


def _still_usable(m):
    m.reset()
    out = m.generate("The capital of France is", 4, temperature=0)
    assert isinstance(out, str) and m.last_stats.n_generated == 4


def test_damaged_files_raise_typed_errors_and_leave_the_model_usable(gemma_path, tmp_path):
    path = _saved(gemma_path, tmp_path)
    data = path.read_bytes()
    with Model(gemma_path, n_ctx=2048, n_threads=N_THREADS) as m:
        m.eval(m.tokenize("What the model held before."))
        before = m.cached_tokens
        cases = {
            "truncated": data[: len(data) // 2],
            "truncated header": data[:14],
            "corrupted": data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:],
            "not a session": b"GGUF" + data[4:],
            "empty": b"",
        }
        for name, blob in cases.items():
            bad = tmp_path / f"{name}.kv"
            bad.write_bytes(blob)
            with pytest.raises(CorruptSessionError) as e:
                m.load_session(bad)
            assert isinstance(e.value, SessionError) and isinstance(e.value, ValueError)
            assert m.cached_tokens == before, name  # unchanged
        assert "checksum" in str(pytest.raises(CorruptSessionError, m.load_session, tmp_path / "corrupted.kv").value)
        assert "truncated" in str(pytest.raises(CorruptSessionError, m.load_session, tmp_path / "truncated.kv").value)
        _still_usable(m)


def test_foreign_files_name_the_mismatch(gemma_path, tmp_path):
    path = _saved(gemma_path, tmp_path)
    with Model(gemma_path, n_ctx=1024, n_threads=N_THREADS) as m:  # another context size
        with pytest.raises(SessionMismatchError, match="2048"):
            m.load_session(path)
        _still_usable(m)
    # Another model: same file format, a different model file (here: the header's
    # fingerprint rewritten with a valid checksum, as another model's file would carry).
    import hashlib, json, struct

    data = path.read_bytes()
    n = struct.unpack_from("<I", data, 12)[0]
    header = json.loads(data[16 : 16 + n])
    header["model"] = "0" * 32
    h2 = json.dumps(header).encode()
    body = data[:12] + struct.pack("<I", len(h2)) + h2 + data[16 + n : -32]
    (tmp_path / "other.kv").write_bytes(body + hashlib.blake2b(body, digest_size=32).digest())
    with Model(gemma_path, n_ctx=2048, n_threads=N_THREADS) as m:
        with pytest.raises(SessionMismatchError, match="another model"):
            m.load_session(tmp_path / "other.kv")
        _still_usable(m)


def test_save_is_atomic(gemma_path, tmp_path, monkeypatch):
    path = _saved(gemma_path, tmp_path)
    good = path.read_bytes()
    with Model(gemma_path, n_ctx=2048, n_threads=N_THREADS) as m:
        m.eval(m.tokenize("Another prompt."))

        def crash(*a):
            raise OSError("disk full")

        monkeypatch.setattr(os, "fsync", crash)
        with pytest.raises(OSError):
            m.save_session(path)
    assert path.read_bytes() == good  # the old file is intact
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
