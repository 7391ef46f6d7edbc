"""Typed errors raised by pytactic. Each native status code maps to one class, and
each class also derives from the built-in exception a Python user would expect
(ValueError for bad input, OSError for unreadable files, MemoryError, ...)."""


class TacticError(Exception):
    """Base class of every error raised by the native runtime."""

    status = None


class InvalidArgumentError(TacticError, ValueError):
    """An argument is out of range or of the wrong kind."""


class ModelFileError(TacticError, OSError):
    """The file cannot be opened or read."""


class InvalidModelError(TacticError, ValueError):
    """The file is not a valid GGUF model (bad magic, truncated, corrupt table, ...)."""


class UnsupportedModelError(TacticError, ValueError):
    """A valid file that this runtime cannot run (architecture, tensor type, ...)."""


class OutOfMemoryError(TacticError, MemoryError):
    """The model or context would not fit; refused before allocating."""


class ContextLengthError(TacticError, ValueError):
    """The tokens do not fit in the context window."""


class CancelledError(TacticError):
    """A native call was cancelled (e.g. by Ctrl-C)."""


class BusyError(TacticError, RuntimeError):
    """The model or context is in use by another thread."""


class InternalError(TacticError, RuntimeError):
    """A bug in the runtime. Please report it with the message."""


class GrammarError(ValueError):
    """A grammar, regex or JSON schema for structured output is malformed (raised
    before any token is generated), or the grammar engine failed during generation."""


# Order follows tactic_status in native/include/tactic.h.
STATUS_ERRORS = {
    1: InvalidArgumentError,
    2: ModelFileError,
    3: InvalidModelError,
    4: UnsupportedModelError,
    5: OutOfMemoryError,
    6: ContextLengthError,
    7: CancelledError,
    8: BusyError,
    9: InternalError,
}
for _code, _cls in STATUS_ERRORS.items():
    _cls.status = _code


class SessionError(TacticError, ValueError):
    """A saved session (KV state) cannot be loaded. The Model is unchanged and usable."""


class CorruptSessionError(SessionError):
    """The file is not a pytactic session, is truncated, or fails its checksum."""


class SessionMismatchError(SessionError):
    """The session was made by another model or for another context size (n_ctx)."""
