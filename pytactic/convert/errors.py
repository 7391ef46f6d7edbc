"""Typed errors of the converter. Each names the file or tensor at fault, and each
also derives from the built-in exception a caller would expect."""


class ConvertError(Exception):
    """Base class of every error raised by pytactic.convert."""


class InvalidOptionError(ConvertError, ValueError):
    """A wrong argument to convert() (an unknown outtype, ...)."""


class SourceNotFoundError(ConvertError, FileNotFoundError):
    """The source is neither a checkpoint directory nor a reachable HF repo, or a file
    the checkpoint needs (config.json, a shard) is missing."""


class CheckpointFormatError(ConvertError, ValueError):
    """A checkpoint file is malformed: truncated or corrupt safetensors, bad JSON, ..."""


class ShapeMismatchError(ConvertError, ValueError):
    """A tensor's shape contradicts config.json, or an expected tensor is absent."""


class UnsupportedModelError(ConvertError, ValueError):
    """A valid checkpoint this converter does not handle (architecture, dtype, scaling, ...)."""


class UnsupportedTokenizerError(ConvertError, ValueError):
    """A tokenizer this converter cannot export faithfully (unknown pre-tokenizer, ...)."""


class QuantizerUnavailableError(ConvertError, RuntimeError):
    """The requested type needs the native quantizer (libtactic), which is not available."""
