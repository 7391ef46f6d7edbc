"""A pytactic server on 127.0.0.1 in a background thread, for the server tests.
Skips (with the reason) when the server extra is not installed."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest


def need_server_extra():
    for mod in ("starlette", "uvicorn"):
        pytest.importorskip(mod, reason=f"the server extra is not installed ({mod}): pip install '.[server]'")


class RunningServer:
    """Serves a ServerState on a free port until stop()."""

    def __init__(self, **config):
        import uvicorn

        from pytactic.server.app import create_app
        from pytactic.server.state import ServerConfig, ServerState

        self.state = ServerState(ServerConfig(**config))
        self.app = create_app(self.state)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self.errors = []
        self.thread = threading.Thread(target=self._run, name="test-server", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if self.errors or not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the test server did not start: {self.errors}")
            time.sleep(0.02)

    def _run(self):
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as e:  # reported to the main thread by stop()/startup
            self.errors.append(e)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()
        if self.errors:
            raise self.errors[0]
        assert not self.thread.is_alive(), "the server thread did not stop"

    def request(self, method: str, path: str, body=None, headers=None, timeout: float = 60):
        """(status, headers, body bytes) of one request, through the standard library."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            conn.close()

    def health(self) -> dict:
        status, _, body = self.request("GET", "/health")
        assert status == 200, body
        return json.loads(body)

    def wait_idle(self, timeout: float = 15.0) -> dict:
        """/health once every slot is free and nobody waits (or fail)."""
        deadline = time.monotonic() + timeout
        while True:
            h = self.health()
            if h["slots_processing"] == 0 and h["queue_waiting"] == 0:
                return h
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not become idle: {h}")
            time.sleep(0.05)
