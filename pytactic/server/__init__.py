"""An OpenAI-compatible HTTP server with a web page for asking questions of
documents (`python -m pytactic serve`). Needs the `server` extra (Starlette, uvicorn)."""

from .cli import add_serve_command

__all__ = ["add_serve_command"]
