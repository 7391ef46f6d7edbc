"""The endpoints: /v1/models, /v1/completions, /v1/chat/completions, /health, and the
web page's helpers /api/extract (text out of a file) and /api/prefill (read a
document into a slot's cache, streaming progress)."""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..chat import ChatTemplateError
from ..errors import ContextLengthError
from . import work
from .documents import extract_text, pdf_supported
from .errors import APIError, bad_request, internal
from .formatting import Formatter
from .requests import GenerationRequest, parse_chat, parse_completion
from .slots import Job
from .sse import EventStream, sse, wait_for_disconnect
from .state import ServerState

log = logging.getLogger("pytactic.server")


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


def _state(request: Request) -> ServerState:
    return request.app.state.server


async def read_json(request: Request):
    raw = await request.body()  # the size limit is enforced while reading (app.py)
    if not raw.strip():
        raise bad_request("The request body is empty; send a JSON object.", None, "invalid_json")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise bad_request(f"We could not parse the JSON body of your request: {e}", None, "invalid_json") from None


async def until_disconnect(request: Request, aw):
    """Await aw unless the client goes away first (then ClientGone, aw cancelled)."""
    task = asyncio.ensure_future(aw)
    watcher = asyncio.ensure_future(wait_for_disconnect(request.receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    raise ClientGone()


def _error_of(exc: BaseException) -> APIError:
    """A worker's exception as the error a client sees (never a traceback)."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, ContextLengthError):
        return bad_request(str(exc), "messages", "context_length_exceeded")
    if isinstance(exc, (ValueError, TypeError)):
        return bad_request(str(exc))
    log.error("generation failed", exc_info=exc)
    return internal(f"The server had an error while generating: {type(exc).__name__}: {exc}")


# -- OpenAI endpoints -------------------------------------------------------------

async def models(request: Request) -> Response:
    s = _state(request)
    return JSONResponse({"object": "list", "data": [_model_card(s)]})


async def model_info(request: Request) -> Response:
    s = _state(request)
    s.check_model(request.path_params["model"])
    return JSONResponse(_model_card(s))


def _model_card(s: ServerState) -> dict:
    return {"id": s.model_id, "object": "model", "created": s.created, "owned_by": "pytactic",
            "meta": {"n_ctx": s.n_ctx, "n_vocab": s.vocab_size, "architecture": s.vocab.architecture}}


async def chat_completions(request: Request) -> Response:
    s = _state(request)
    req = parse_chat(await read_json(request))
    s.check_model(req.model)
    try:
        ids = await s.chat_ids(req.messages)
    except ChatTemplateError as e:
        raise bad_request(f"The chat template refused the messages: {e}", "messages", "invalid_value") from None
    s.check_length(ids)
    return await _generate(request, s, req, ids)


async def completions(request: Request) -> Response:
    s = _state(request)
    req = parse_completion(await read_json(request))
    s.check_model(req.model)
    ids = await s.prompt_ids(req.prompt)
    s.check_length(ids)
    return await _generate(request, s, req, ids)


async def _generate(request: Request, s: ServerState, req: GenerationRequest, ids) -> Response:
    try:
        slot = await until_disconnect(request, s.pool.acquire(ids))
    except ClientGone:
        return Response(status_code=499)  # nobody is listening; nothing ran
    job = Job(asyncio.get_running_loop())
    s.pool.start(slot, work.generation(ids, req.max_tokens, req.stop, req.sampling), job)
    fmt = Formatter(req.kind, s.model_id)
    if req.stream:
        return EventStream(_stream(s, job, fmt, req), job.cancel)
    try:
        text, stats = await until_disconnect(request, _collect(s, job))
    except ClientGone:
        job.cancel()
        return Response(status_code=499)
    return JSONResponse(fmt.whole(text, stats))


async def _collect(s: ServerState, job: Job):
    pieces = []
    async for kind, data in job.events():
        if kind == "piece":
            pieces.append(data)
            continue
        if kind == "error":
            raise _error_of(data)
        return "".join(pieces), data
    raise internal("the generation ended without a result")


async def _stream(s: ServerState, job: Job, fmt: Formatter, req: GenerationRequest):
    if req.kind == "chat":
        yield sse(fmt.chunk(None, first=True))
    async for kind, data in job.events():
        if kind == "piece":
            yield sse(fmt.chunk(data))
            continue
        if kind == "done":
            yield sse(fmt.chunk(None, data.finish_reason or "stop"))
            if req.include_usage:
                yield sse(fmt.usage_chunk(data))
        elif kind == "error":
            yield sse(_error_of(data).body())
        elif kind == "cancelled":
            return
    yield sse("[DONE]")


async def health(request: Request) -> Response:
    s = _state(request)
    body = {"status": "ok", "model": s.model_id, "n_ctx": s.n_ctx,
            "auth_required": bool(s.config.api_key), "pdf": pdf_supported()}
    body.update(s.pool.info())
    return JSONResponse(body)


# -- the web page's helpers --------------------------------------------------------

async def extract(request: Request) -> Response:
    name = request.query_params.get("name", "")
    data = await request.body()
    if not data:
        raise bad_request("The file is empty.", "file", "empty_file")
    loop = asyncio.get_running_loop()
    return JSONResponse(await loop.run_in_executor(None, extract_text, name, data))


async def prefill(request: Request) -> Response:
    """Read messages into a slot's cache (no generation), streaming
    {"type": "progress", "done", "total"} events, then {"type": "ready", ...}."""
    s = _state(request)
    body = await read_json(request)
    req = parse_chat({"messages": body.get("messages")} if isinstance(body, dict) else body)
    try:
        ids = await s.chat_ids(req.messages, add_generation_prompt=False)
    except ChatTemplateError as e:
        raise bad_request(f"The chat template refused the messages: {e}", "messages", "invalid_value") from None
    s.check_length(ids)
    try:
        slot = await until_disconnect(request, s.pool.acquire(ids))
    except ClientGone:
        return Response(status_code=499)
    job = Job(asyncio.get_running_loop())
    s.pool.start(slot, work.prefill(ids), job)
    return EventStream(_prefill_events(s, job), job.cancel)


async def _prefill_events(s: ServerState, job: Job):
    async for kind, data in job.events():
        if kind == "progress":
            yield sse({"type": "progress", **data})
        elif kind == "done":
            yield sse({"type": "ready", **data})
        elif kind == "error":
            yield sse(_error_of(data).body())
        elif kind == "cancelled":
            return
    yield sse("[DONE]")
