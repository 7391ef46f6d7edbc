"""pytactic: run GGUF models locally, with Tactic sparse attention for long contexts."""

from .errors import (
    BusyError,
    CancelledError,
    ContextLengthError,
    InternalError,
    InvalidArgumentError,
    InvalidModelError,
    ModelFileError,
    OutOfMemoryError,
    TacticError,
    UnsupportedModelError,
)

__version__ = "0.1.0"

__all__ = [
    "Model",
    "TacticError",
    "BusyError",
    "CancelledError",
    "ContextLengthError",
    "InternalError",
    "InvalidArgumentError",
    "InvalidModelError",
    "ModelFileError",
    "OutOfMemoryError",
    "UnsupportedModelError",
]


def __getattr__(name):
    # Model pulls in the native library; import it lazily so `import pytactic`
    # (and the converter) work even before the library is built.
    if name == "Model":
        from .model import Model

        return Model
    raise AttributeError(name)
