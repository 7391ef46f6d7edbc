"""Malformed requests: each gets the right HTTP status and an OpenAI-shaped JSON
error ({"error": {"message", "type", "param", "code"}}) that says what is wrong; the
server keeps serving. The same table is in docs/SERVER.md."""

import json
import socket

import pytest

from server_harness import RunningServer, need_server_extra

need_server_extra()

KEY = "s3cret-key"
AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
N_CTX = 256
LIMIT = 64 * 1024  # body limit of the test server

CHAT = "/v1/chat/completions"
MSG = [{"role": "user", "content": "hi"}]


def chat(**kw):
    return json.dumps({"messages": MSG, **kw})


# (what, method, path, body, headers, status, words the message must contain)
CASES = [
    ("not JSON", "POST", CHAT, "{bad json", AUTH, 400, "could not parse the JSON"),
    ("empty body", "POST", CHAT, "", AUTH, 400, "body is empty"),
    ("a JSON array", "POST", CHAT, "[1, 2]", AUTH, 400, "must be a JSON object"),
    ("no messages", "POST", CHAT, "{}", AUTH, 400, "'messages' must be a non-empty list"),
    ("messages is a string", "POST", CHAT, json.dumps({"messages": "hi"}), AUTH, 400, "'messages' must be"),
    ("unknown role", "POST", CHAT, json.dumps({"messages": [{"role": "wizard", "content": "x"}]}), AUTH, 400,
     "messages[0].role must be one of"),
    ("content is a number", "POST", CHAT, json.dumps({"messages": [{"role": "user", "content": 5}]}), AUTH, 400,
     "messages[0].content must be a string"),
    ("negative max_tokens", "POST", CHAT, chat(max_tokens=-5), AUTH, 400, "'max_tokens' must be >= 1, got -5"),
    ("max_tokens a string", "POST", CHAT, chat(max_tokens="10"), AUTH, 400, "'max_tokens' must be an integer"),
    ("temperature a string", "POST", CHAT, chat(temperature="hot"), AUTH, 400, "'temperature' must be a number"),
    ("top_p above 1", "POST", CHAT, chat(top_p=1.5), AUTH, 400, "'top_p' must be between 0 and 1, got 1.5"),
    ("n = 2", "POST", CHAT, chat(n=2), AUTH, 400, "Only n=1 is supported"),
    ("stop holds a number", "POST", CHAT, chat(stop=["a", 3]), AUTH, 400, "'stop' must be a string or a list"),
    ("five stop strings", "POST", CHAT, chat(stop=list("abcde")), AUTH, 400, "'stop' takes at most 4"),
    ("stream a string", "POST", CHAT, chat(stream="yes"), AUTH, 400, "'stream' must be a boolean"),
    ("seed a float", "POST", CHAT, chat(seed=1.5), AUTH, 400, "'seed' must be an integer"),
    ("logprobs asked", "POST", CHAT, chat(logprobs=True), AUTH, 400, "logprobs are not supported"),
    ("unknown model", "POST", CHAT, chat(model="gpt-17"), AUTH, 404, "The model 'gpt-17' does not exist"),
    ("no API key", "POST", CHAT, chat(), {"Content-Type": "application/json"}, 401, "didn't provide an API key"),
    ("wrong API key", "POST", CHAT, chat(), {"Authorization": "Bearer nope"}, 401, "Incorrect API key"),
    ("not a bearer key", "POST", CHAT, chat(), {"Authorization": f"Basic {KEY}"}, 401, "Incorrect API key"),
    ("no API key, path without /v1", "POST", "/chat/completions", chat(), {}, 401, "didn't provide an API key"),
    ("no API key, models", "GET", "/v1/models", None, {}, 401, "didn't provide an API key"),
    ("body over the limit", "POST", CHAT, json.dumps({"messages": MSG, "pad": "x" * (LIMIT + 1)}), AUTH, 413,
     f"larger than the server's limit of {LIMIT} bytes"),
    ("prompt over the context", "POST", CHAT, json.dumps({"messages": [{"role": "user", "content": "word " * 600}]}),
     AUTH, 400, f"maximum context length is {N_CTX} tokens. However, your prompt is 6"),
    ("completion without prompt", "POST", "/v1/completions", "{}", AUTH, 400, "'prompt' must be a non-empty"),
    ("token id outside the vocabulary", "POST", "/v1/completions", json.dumps({"prompt": [2, 99999999]}), AUTH,
     400, "token id 99999999 is outside the vocabulary"),
    ("completion over the context", "POST", "/v1/completions", json.dumps({"prompt": [2] * (N_CTX + 1)}), AUTH,
     400, f"maximum context length is {N_CTX} tokens. However, your prompt is {N_CTX + 1} tokens"),
    ("unknown path", "GET", "/v1/nothing", None, AUTH, 404, "Unknown path: /v1/nothing"),
    ("GET on a POST endpoint", "GET", CHAT, None, AUTH, 405, "Method GET is not allowed"),
    ("file of an unknown type", "POST", "/api/extract?name=a.exe", "MZ\x00\x00", AUTH, 415, "reads .txt, .md"),
    ("broken PDF", "POST", "/api/extract?name=a.pdf", "%PDF-1.4 garbage", AUTH, 400, "Could not read the PDF"),
]


@pytest.fixture(scope="module")
def server(gemma_path):
    srv = RunningServer(model_path=gemma_path, n_ctx=N_CTX, n_threads=2, api_key=KEY, max_body=LIMIT)
    yield srv
    srv.stop()


@pytest.mark.parametrize("what,method,path,body,headers,status,words", CASES, ids=[c[0] for c in CASES])
def test_malformed_request(server, what, method, path, body, headers, status, words):
    got, resp_headers, raw = server.request(method, path, body=body, headers=headers)
    assert got == status, raw
    assert resp_headers["content-type"].startswith("application/json")
    err = json.loads(raw)
    assert set(err) == {"error"} and set(err["error"]) == {"message", "type", "param", "code"}
    assert words in err["error"]["message"], err
    assert "Traceback" not in err["error"]["message"]
    if status == 401:
        assert resp_headers.get("www-authenticate") == "Bearer"


def test_chunked_body_over_the_limit(server):
    """A body without Content-Length is counted as it arrives."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    head = (f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    s.sendall(head)
    piece = b"x" * 8192
    try:
        for _ in range(LIMIT // len(piece) + 2):
            s.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        s.sendall(b"0\r\n\r\n")
    except OSError:  # the server may answer and close before the end
        pass
    reply = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        reply += chunk
        if b"}}" in reply:
            break
    s.close()
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"larger than the server's limit" in reply


def test_still_serving_after_all_that(server):
    status, _, raw = server.request("POST", CHAT, chat(max_tokens=3, temperature=0), AUTH)
    assert status == 200, raw
    out = json.loads(raw)
    assert out["usage"]["completion_tokens"] <= 3
    h = server.health()  # open without the key, as llama-server's
    assert h["status"] == "ok" and h["auth_required"] is True and h["counters"]["errors"] == 0
