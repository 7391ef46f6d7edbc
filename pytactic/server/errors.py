"""Errors in OpenAI's JSON shape: {"error": {"message", "type", "param", "code"}},
each with the HTTP status a client of the OpenAI API expects."""

from __future__ import annotations

from typing import Optional


class APIError(Exception):
    """An error that becomes one JSON response (or one SSE error event)."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 param: Optional[str] = None, code: Optional[str] = None, headers: Optional[dict] = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, param: Optional[str] = None, code: Optional[str] = None) -> APIError:
    return APIError(400, message, "invalid_request_error", param, code)


def unknown_model(name: str) -> APIError:
    return APIError(404, f"The model '{name}' does not exist", "invalid_request_error", "model", "model_not_found")


def context_too_long(n_prompt: int, n_ctx: int) -> APIError:
    return APIError(
        400,
        f"This model's maximum context length is {n_ctx} tokens. However, your prompt is {n_prompt} tokens. "
        f"Please shorten it, or start the server with a larger -c.",
        "invalid_request_error", "messages", "context_length_exceeded",
    )


def overloaded(waiting: int) -> APIError:
    return APIError(429, f"The server is busy: all slots are in use and {waiting} requests are already "
                    f"waiting. Retry shortly.", "rate_limit_error", None, "rate_limit_exceeded",
                    {"Retry-After": "1"})


def unavailable(message: str) -> APIError:
    return APIError(503, message, "server_error", None, "service_unavailable", {"Retry-After": "5"})


def unauthorized(message: str) -> APIError:
    return APIError(401, message, "invalid_request_error", None, "invalid_api_key",
                    {"WWW-Authenticate": "Bearer"})


def too_large(limit: int) -> APIError:
    return APIError(413, f"The request body is larger than the server's limit of {limit} bytes.",
                    "invalid_request_error", None, "request_too_large")


def internal(message: str = "The server had an error while processing your request.") -> APIError:
    return APIError(500, message, "server_error", None, "internal_error")
