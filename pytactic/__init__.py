"""pytactic: run GGUF models locally, with Tactic sparse attention for long contexts."""

from .errors import (
    BusyError,
    CancelledError,
    ContextLengthError,
    GrammarError,
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
    "Sampler",
    "SamplingParams",
    "ChatTemplate",
    "ChatTemplateError",
    "TacticError",
    "BusyError",
    "CancelledError",
    "ContextLengthError",
    "Grammar",
    "GrammarError",
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
        from . import model

        return model.Model
    if name in ("Sampler", "SamplingParams"):
        from . import sampling

        return getattr(sampling, name)
    if name == "Grammar":
        from . import grammar

        return grammar.Grammar
    if name in ("ChatTemplate", "ChatTemplateError"):
        from . import chat

        return getattr(chat, name)
    raise AttributeError(name)
