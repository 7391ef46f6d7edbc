"""Model.from_pretrained against a stand-in Hub on 127.0.0.1 (never the internet):
download into huggingface_hub's cache, reuse it offline (HF_HUB_OFFLINE), globs,
and clear errors for missing repos / files."""

import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pytactic.errors import ModelFileError
from pytactic.hub import download

REPO = "tester/tiny-GGUF"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """Serves /{repo}/resolve/{rev}/{file} and /api/models/{repo}/tree/{rev}."""

    def __init__(self, files):
        self.files = files  # name -> bytes
        self.requests = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _file(self):
                prefix = f"/{REPO}/resolve/"
                if not self.path.startswith(prefix):
                    return None, None
                rev, _, name = self.path[len(prefix):].partition("/")
                return rev, name

            def _send_404(self, code):
                self.send_response(404)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _serve(self, body):
                hub.requests.append((self.command, self.path))
                if self.path.startswith(f"/api/models/{REPO}/tree/"):
                    listing = [{"type": "file", "path": n, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                               for n, b in hub.files.items()]
                    data = json.dumps(listing).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if body:
                        self.wfile.write(data)
                    return
                rev, name = self._file()
                if rev is None:
                    return self._send_404("RepoNotFound")
                if name not in hub.files:
                    return self._send_404("EntryNotFound")
                data = hub.files[name]
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_HEAD(self):
                self._serve(False)

            def do_GET(self):
                self._serve(True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gguf_bytes(tmp_path):
    from test_chat_templates import write_vocab_gguf

    p = tmp_path / "src.gguf"
    write_vocab_gguf(p, "{{ 'hub' }}", "<s>", "</s>")
    return p.read_bytes()


@pytest.fixture
def hub(gguf_bytes):
    h = FakeHub({"tiny-Q4_K_M.gguf": gguf_bytes, "tiny-Q8_0.gguf": gguf_bytes, "README.md": b"hi"})
    yield h
    h.close()


def test_download_into_the_cache_then_offline(hub, tmp_path, gguf_bytes):
    cache = tmp_path / "cache"
    path = download(REPO, "tiny-Q4_K_M.gguf", cache_dir=cache, endpoint=hub.endpoint)
    assert Path(path).read_bytes() == gguf_bytes
    assert str(cache) in path and COMMIT in path  # huggingface_hub's cache layout
    n = len(hub.requests)
    # again, without the network: from the cache
    again = download(REPO, "tiny-Q4_K_M.gguf", cache_dir=cache, endpoint=hub.endpoint, local_files_only=True)
    assert again == path and len(hub.requests) == n


def test_glob_picks_the_one_match(hub, tmp_path):
    cache = tmp_path / "cache"
    path = download(REPO, "*Q8_0.gguf", cache_dir=cache, endpoint=hub.endpoint)
    assert path.endswith("tiny-Q8_0.gguf")
    with pytest.raises(ModelFileError, match="several"):
        download(REPO, "*.gguf", cache_dir=cache, endpoint=hub.endpoint)
    with pytest.raises(ModelFileError, match="no file .* matches"):
        download(REPO, "*Q2_K*.gguf", cache_dir=cache, endpoint=hub.endpoint)
    # offline, globs look in the cache
    path2 = download(REPO, "*Q8_0.gguf", cache_dir=cache, local_files_only=True)
    assert path2 == path


def test_missing_file_and_not_cached_offline(hub, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(ModelFileError, match="no-such.gguf"):
        download(REPO, "no-such.gguf", cache_dir=cache, endpoint=hub.endpoint)
    with pytest.raises(ModelFileError, match="not in the local Hugging Face cache"):
        download(REPO, "tiny-Q4_K_M.gguf", cache_dir=cache, local_files_only=True)


def test_from_pretrained_loads_and_honours_hf_hub_offline(hub, tmp_path):
    from pytactic import Model

    cache = tmp_path / "cache"
    with Model.from_pretrained(REPO, "tiny-Q4_K_M.gguf", cache_dir=cache, endpoint=hub.endpoint,
                               vocab_only=True) as m:
        assert m.metadata("tokenizer.chat_template") == "{{ 'hub' }}"
    hub.close()  # the Hub is gone: HF_HUB_OFFLINE must make the cached copy enough
    code = (
        "from pytactic import Model\n"
        f"m = Model.from_pretrained({REPO!r}, 'tiny-Q4_K_M.gguf', vocab_only=True)\n"
        "print(m.metadata('tokenizer.chat_template'))\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache), HF_ENDPOINT="http://127.0.0.1:9")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "{{ 'hub' }}"
