"""The command line as a person uses it: `run` streams a completion, `chat` is driven
in a pseudo-terminal (pexpect): it answers, keeps the conversation, and exits cleanly
on Ctrl-D and on Ctrl-C at the prompt; Ctrl-C while it writes stops only that answer.

The children get SIGINT back at its default: a runner started in the background
(`nohup pytest &`) ignores SIGINT, an ignored signal survives exec, and a Python that
starts with SIGINT ignored never turns Ctrl-C into KeyboardInterrupt. Every child is
killed at the end of its test, whatever happened."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_run_streams_a_completion(gemma_path, refs):
    r = refs["greedy"][0]
    out = subprocess.run(
        [sys.executable, "-m", "pytactic", "run", gemma_path, r["prompt"], "-n", "4", "--temp", "0", "-c", "128"],
        env=_env(), capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == r["stable_prefix_text"] + "\n"
    assert "tok/s" in out.stderr and "4 tokens" in out.stderr


def test_run_reports_errors_without_a_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pytactic", "run", str(tmp_path / "none.gguf"), "hi"],
                         env=_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "not found" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "pytactic", "run", "x.gguf", "hi", "--top-p", "2"],
                         env=_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def spawn():
    """spawn(*args) starts `python -m pytactic chat ...` in a pseudo-terminal; every
    child still alive at teardown (a hung one included) is killed."""
    pexpect = pytest.importorskip("pexpect")
    children = []

    def start(*args):
        child = pexpect.spawn(sys.executable, ["-m", "pytactic", "chat", *args], env=_env(),
                              encoding="utf-8", timeout=120, preexec_fn=_default_sigint)
        children.append(child)
        return child

    yield start
    for child in children:
        if child.isalive():
            child.terminate(force=True)


def _spawn_chat(spawn, gemma_path, *extra):
    import pexpect

    child = spawn(gemma_path, "--temp", "0", "-c", "512", *extra)
    child.expect_exact("> ")
    return pexpect, child


def test_chat_answers_keeps_the_conversation_and_exits_on_ctrl_d(spawn, gemma_path):
    pexpect, child = _spawn_chat(spawn, gemma_path, "-n", "3")
    child.sendline("Hello")
    child.expect(r"\[3 tokens in .* tok/s\)")  # the answer's statistics (stderr)
    first = child.before
    child.expect_exact("> ")
    child.sendline("And then?")
    # the second turn starts with the first turn, which comes from the KV cache
    child.expect(r"tok/s\), prompt \d+ tokens .*, (\d+) reused from cache")
    assert int(child.match.group(1)) >= 8
    child.expect_exact("> ")
    child.sendeof()  # Ctrl-D
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "Traceback" not in (child.before or "") + first


def test_chat_ctrl_c_at_the_prompt_exits_cleanly(spawn, gemma_path):
    pexpect, child = _spawn_chat(spawn, gemma_path)
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "Traceback" not in child.before


def test_chat_ctrl_c_while_writing_stops_only_that_answer(spawn, gemma_path):
    pexpect, child = _spawn_chat(spawn, gemma_path, "-n", "200")
    child.sendline("Tell me a long story.")
    child.expect_exact("Tell me a long story.")  # the terminal's echo
    child.expect(r"\S")  # the answer has begun
    child.sendintr()
    child.expect(r"interrupted\]")
    child.expect_exact("> ")  # back at the prompt: the chat goes on
    child.sendline("Another one.")
    child.expect_exact("Another one.")
    child.expect(r"\S")  # it answers the next turn
    child.sendintr()
    child.expect(r"interrupted\]")
    child.expect_exact("> ")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_chat_too_long_for_the_context_then_reset(spawn, gemma_path):
    import pexpect

    child = spawn(gemma_path, "--temp", "0", "-c", "48", "-n", "3")
    child.expect_exact("> ")
    child.sendline("word " * 60)
    child.expect(r"error: the prompt has \d+ tokens but the context holds only 48.*/reset")
    child.expect_exact("> ")
    child.sendline("Hi")
    child.expect(r"tok/s")
    child.expect_exact("> ")
    child.sendline("/reset")
    child.expect_exact("[conversation cleared]")
    child.expect_exact("> ")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
