"""The Starlette application: routes, the bearer-key and body-size guard (a plain
ASGI middleware, so it also limits bodies sent without Content-Length), and
exception handlers that turn every failure into an OpenAI-shaped JSON error."""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from . import routes
from .errors import APIError, internal, too_large, unauthorized
from .state import ServerState

log = logging.getLogger("pytactic.server")
STATIC = Path(__file__).resolve().parent / "static"
# With an API key, every path needs it except the page, its files and /health (the
# page asks for the key and sends it with its own requests).
_OPEN = ("/", "/health")
_OPEN_PREFIX = "/static/"


def _error_response(err: APIError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


async def _send_error(send, err: APIError) -> None:
    body = json.dumps(err.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Bearer-key check (constant-time) and the request body limit."""

    def __init__(self, app, api_key, max_body: int):
        self.app = app
        self.key = api_key.encode() if api_key else None
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        path = scope["path"]
        if self.key is not None and not (path in _OPEN or path.startswith(_OPEN_PREFIX)):
            auth = headers.get(b"authorization", b"")
            if not auth:
                return await _send_error(send, unauthorized(
                    "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'."))
            scheme, _, given = auth.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self.key):
                return await _send_error(send, unauthorized("Incorrect API key provided."))
        length = headers.get(b"content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                n = -1
            if n < 0:
                return await _send_error(send, APIError(400, "Invalid Content-Length header."))
            if n > self.max_body:
                return await _send_error(send, too_large(self.max_body))
        seen = 0
        limit = self.max_body

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise too_large(limit)
            return message

        await self.app(scope, limited_receive, send)


async def _api_error(request: Request, exc: APIError):
    return _error_response(exc)


async def _http_error(request: Request, exc: HTTPException):
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    message = {404: f"Unknown path: {request.url.path}",
               405: f"Method {request.method} is not allowed on {request.url.path}"}.get(exc.status_code, exc.detail)
    return _error_response(APIError(exc.status_code, message, "invalid_request_error", None, code))


async def _unexpected(request: Request, exc: Exception):
    log.error("unexpected error on %s", request.url.path, exc_info=exc)
    return _error_response(internal())


async def _index(request: Request):
    return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})


def create_app(state: ServerState) -> Guard:
    """The ASGI application serving state (a loaded ServerState)."""

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await state.close()

    app = Starlette(
        routes=[
            Route("/", _index),
            Route("/health", routes.health),
            Route("/v1/models", routes.models),
            Route("/v1/models/{model:path}", routes.model_info),
            Route("/v1/completions", routes.completions, methods=["POST"]),
            Route("/v1/chat/completions", routes.chat_completions, methods=["POST"]),
            # Without the /v1 prefix too, as llama-server accepts them.
            Route("/completions", routes.completions, methods=["POST"]),
            Route("/chat/completions", routes.chat_completions, methods=["POST"]),
            Route("/api/extract", routes.extract, methods=["POST"]),
            Route("/api/prefill", routes.prefill, methods=["POST"]),
            Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
        ],
        exception_handlers={APIError: _api_error, HTTPException: _http_error, Exception: _unexpected},
        lifespan=lifespan,
    )
    app.state.server = state
    return Guard(app, state.config.api_key, state.config.max_body)
