"""The server through the official openai client, on 127.0.0.1 with the real Gemma 3
270M: completions and chat, streamed and not; greedy text equal to llama.cpp's
reference; a second question about the same document served from the cache; a
client that leaves mid-stream frees its slot; a full queue answers 429."""

import json
import socket
import threading
import time

import pytest

from server_harness import RunningServer, need_server_extra

need_server_extra()
openai = pytest.importorskip("openai", reason="the openai client is not installed (it is in the test extra)")

DOC = (
    "The Vellmar Bridge crosses the river Osk at the town of Hallin. It was built in 1872 by the "
    "engineer Ada Brenn, who used iron from the Kessel foundry. The bridge is 214 metres long and "
    "has seven arches. In 1931 a flood damaged the third arch, which was rebuilt in granite. "
) * 6


@pytest.fixture(scope="module")
def server(gemma_path):
    srv = RunningServer(model_path=gemma_path, n_ctx=2048, n_threads=2, slots=1, max_queue=0)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def vocab(gemma_path):
    from pytactic import Model

    with Model(gemma_path, vocab_only=True) as m:
        yield m


def test_models(client, server):
    ids = [m.id for m in client.models.list()]
    assert ids == [server.state.model_id]
    assert client.models.retrieve(ids[0]).id == ids[0]


def test_completion_greedy_matches_llama_cpp(client, refs):
    for r in refs["greedy"][:2]:
        n = r["stable_prefix_len"]
        out = client.completions.create(model="gemma-3-270m-q4_k_m", prompt=r["prompt"], max_tokens=n,
                                        temperature=0)
        assert out.choices[0].text == r["stable_prefix_text"], r["prompt"]
        assert out.choices[0].finish_reason == "length"
        assert out.usage.prompt_tokens == len(r["prompt_ids"])
        assert out.usage.completion_tokens == n


def test_completion_streamed_equals_whole(client, refs):
    r = refs["greedy"][0]
    n = r["stable_prefix_len"]
    chunks = list(client.completions.create(model="gemma-3-270m-q4_k_m", prompt=r["prompt"], max_tokens=n,
                                            temperature=0, stream=True))
    assert len(chunks) >= n  # one chunk per token, then the finish
    assert "".join(c.choices[0].text for c in chunks) == r["stable_prefix_text"]
    assert chunks[-1].choices[0].finish_reason == "length"


def test_chat_whole_and_streamed_agree_with_library(client, server, gemma_path):
    from pytactic import Model

    messages = [{"role": "user", "content": "Name three colours."}]
    with Model(gemma_path, n_ctx=512, n_threads=2) as m:
        expect = m.chat(messages, max_tokens=24, temperature=0)
    out = client.chat.completions.create(model=server.state.model_id, messages=messages, max_tokens=24,
                                         temperature=0)
    assert out.choices[0].message.role == "assistant"
    assert out.choices[0].message.content == expect["choices"][0]["message"]["content"]
    assert out.choices[0].finish_reason == expect["choices"][0]["finish_reason"]
    assert out.usage.prompt_tokens == expect["usage"]["prompt_tokens"]
    assert out.usage.completion_tokens == expect["usage"]["completion_tokens"]

    stream = client.chat.completions.create(model=server.state.model_id, messages=messages, max_tokens=24,
                                            temperature=0, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == out.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [out.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == out.usage.completion_tokens


def test_stop_and_seed(client):
    kw = dict(prompt="Count: 1, 2, 3,", max_tokens=12)
    out = client.completions.create(model="gemma-3-270m-q4_k_m.gguf", **kw, temperature=0, stop=[","])
    assert "," not in out.choices[0].text and out.choices[0].finish_reason == "stop"
    a = client.completions.create(model="gemma-3-270m-q4_k_m.gguf", **kw, temperature=1.0, seed=7)
    b = client.completions.create(model="gemma-3-270m-q4_k_m.gguf", **kw, temperature=1.0, seed=7)
    assert a.choices[0].text == b.choices[0].text


def test_second_question_reuses_the_document(client, server, vocab):
    def ask(q):
        messages = [{"role": "system", "content": "Answer from this document:\n" + DOC},
                    {"role": "user", "content": q}]
        out = client.chat.completions.create(model=server.state.model_id, messages=messages, max_tokens=8,
                                             temperature=0)
        return out, vocab.chat_prompt_ids(messages)

    before = server.health()["counters"]
    first, ids1 = ask("Who built the bridge?")
    second, ids2 = ask("How long is the bridge?")
    shared = 0
    while ids1[shared] == ids2[shared]:
        shared += 1
    assert shared > 300  # the document, in tokens
    assert first.usage.prompt_tokens == len(ids1) and second.usage.prompt_tokens == len(ids2)
    assert first.usage.prompt_tokens_details.cached_tokens < shared  # the document was new
    # The second pays only for what follows the document.
    assert second.usage.prompt_tokens_details.cached_tokens == shared
    after = server.health()["counters"]
    assert after["cached_tokens"] - before["cached_tokens"] == (
        first.usage.prompt_tokens_details.cached_tokens + shared)


def _raw_stream(server, body: dict) -> socket.socket:
    """Send a streaming request on a raw socket and read until the first chunk."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    data = json.dumps(body).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
    got = b""
    while b"data: " not in got:
        chunk = s.recv(4096)
        assert chunk, got
        got += chunk
    assert got.startswith(b"HTTP/1.1 200"), got
    return s


def test_disconnect_mid_stream_frees_the_slot_and_full_queue_is_429(server, client):
    before = server.wait_idle()["counters"]
    s = _raw_stream(server, {"messages": [{"role": "user", "content": "Write a very long story."}],
                             "max_tokens": 1500, "temperature": 1.0, "stream": True})
    # The only slot is busy and the queue holds 0: the next request is refused.
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model=server.state.model_id, max_tokens=4,
                                       messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 429
    assert "busy" in e.value.body["message"]
    t0 = time.monotonic()
    s.close()
    h = server.wait_idle(timeout=10)
    freed_s = time.monotonic() - t0
    assert h["counters"]["cancelled"] == before["cancelled"] + 1
    assert h["counters"]["rejected"] == before["rejected"] + 1
    # Far fewer than 1500 tokens were made: the loop stopped when the client left.
    assert h["counters"]["generated_tokens"] - before["generated_tokens"] < 400, (h, freed_s)
    out = client.chat.completions.create(model=server.state.model_id, max_tokens=4,
                                         messages=[{"role": "user", "content": "hi"}])
    assert out.choices[0].finish_reason in ("stop", "length")


def test_disconnect_during_prefill(server):
    """A long prompt whose client leaves during the prefill: the prefill is cancelled
    natively and the slot freed at once."""
    before = server.wait_idle()["counters"]
    long_doc = "All work and no play makes Jack a dull boy. " * 150  # ~1800 tokens
    body = json.dumps({"messages": [{"role": "user", "content": long_doc}], "max_tokens": 4}).encode()
    s = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    deadline = time.monotonic() + 30
    while server.health()["slots_processing"] == 0:  # wait until the prefill has begun
        assert time.monotonic() < deadline
        time.sleep(0.01)
    s.close()
    t0 = time.monotonic()
    h = server.wait_idle(timeout=10)
    assert time.monotonic() - t0 < 5
    assert h["counters"]["cancelled"] == before["cancelled"] + 1
    assert h["counters"]["generated_tokens"] == before["generated_tokens"]  # it never reached decoding


def test_disconnect_before_a_whole_answer(server):
    """A non-streamed request whose client leaves: its generation stops too."""
    before = server.wait_idle()["counters"]
    body = json.dumps({"messages": [{"role": "user", "content": "Write a very long story."}],
                       "max_tokens": 1500, "temperature": 1.0}).encode()
    s = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    deadline = time.monotonic() + 30
    while server.health()["counters"]["requests"] == before["requests"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.5)  # some tokens are made
    s.close()
    h = server.wait_idle(timeout=10)
    assert h["counters"]["cancelled"] == before["cancelled"] + 1
    assert h["counters"]["generated_tokens"] - before["generated_tokens"] < 400


def test_concurrent_clients_all_answered(gemma_path):
    """Two slots, four threads: every answer arrives, errors propagate to the test."""
    srv = RunningServer(model_path=gemma_path, n_ctx=512, n_threads=1, slots=2, max_queue=8)
    try:
        c = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0, timeout=120)
        results, errors = [], []

        def worker(i):
            try:
                out = c.completions.create(model=srv.state.model_id, prompt=f"Number {i}:", max_tokens=6,
                                           temperature=0)
                results.append(out.usage.completion_tokens)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        assert len(results) == 4 and all(0 < n <= 6 for n in results)
        h = srv.wait_idle()
        assert sum(s["jobs"] for s in h["slots"]) == 4
    finally:
        srv.stop()


def test_serve_command(gemma_path):
    """`python -m pytactic serve` starts, answers, and stops cleanly on Ctrl-C;
    bad options are an error message and exit status 1."""
    import os
    import signal
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    bad = subprocess.run([sys.executable, "-m", "pytactic", "serve", "-m", gemma_path, "--slots", "0"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1 and "--slots must be >= 1" in bad.stderr, bad.stderr

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "pytactic", "serve", "-m", gemma_path, "--port", str(port),
                             "-c", "256", "-t", "1", "--alias", "tiny"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            # SIGINT at its default even when this runner ignores it (nohup ... &)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                    h = json.loads(r.read())
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        assert h["model"] == "tiny" and h["n_ctx"] == 256
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            page = r.read().decode()
        assert "<title>pytactic" in page and "/static/app.js" in page
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/app.js", timeout=5) as r:
            assert b"/v1/chat/completions" in r.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "Traceback" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
