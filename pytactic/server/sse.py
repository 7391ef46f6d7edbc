"""Server-sent events that notice a client leaving: while the events are sent, a
second task waits for the ASGI "http.disconnect" message and cancels the job, so a
closed connection stops its generation and frees its slot at once."""

from __future__ import annotations

import asyncio
import json
from typing import AsyncIterator, Awaitable, Callable, Optional


def sse(data) -> bytes:
    """One SSE event carrying data (a dict as JSON, or a literal string)."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {text}\n\n".encode("utf-8")


async def wait_for_disconnect(receive: Callable[[], Awaitable[dict]]) -> None:
    """Returns when the client has gone (call once the request body is read)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class EventStream:
    """An ASGI response sending the chunks of an async iterator of bytes as
    text/event-stream; on_disconnect() is called if the client goes away first."""

    def __init__(self, chunks: AsyncIterator[bytes], on_disconnect: Callable[[], None],
                 headers: Optional[dict] = None):
        self.chunks = chunks
        self.on_disconnect = on_disconnect
        self.headers = headers or {}

    async def __call__(self, scope, receive, send) -> None:
        headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                   (b"x-accel-buffering", b"no")]
        headers += [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]
        gone = asyncio.Event()

        async def watch():
            await wait_for_disconnect(receive)
            gone.set()
            self.on_disconnect()

        watcher = asyncio.create_task(watch())
        complete = False
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            async for chunk in self.chunks:
                if gone.is_set():
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not gone.is_set():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                complete = True
        except OSError:  # the server found the socket closed while sending
            pass
        finally:
            watcher.cancel()
            if not complete:  # gone, failed to send, or the server is stopping
                self.on_disconnect()
            aclose = getattr(self.chunks, "aclose", None)
            if aclose is not None:
                await aclose()
