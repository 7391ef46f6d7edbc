"""Hugging Face checkpoint -> GGUF conversion (`python -m pytactic.convert SRC`).

Supported: LlamaForCausalLM and MistralForCausalLM (-> llama), Qwen2ForCausalLM,
Qwen3ForCausalLM, Gemma3ForCausalLM (text). numpy and gguf only; K-quant output
uses libtactic's native quantizer."""

from .converter import ConvertResult, convert
from .errors import (
    CheckpointFormatError,
    ConvertError,
    InvalidOptionError,
    QuantizerUnavailableError,
    ShapeMismatchError,
    SourceNotFoundError,
    UnsupportedModelError,
    UnsupportedTokenizerError,
)
from .hparams import SUPPORTED_ARCHITECTURES
from .quantize import OUTTYPES

__all__ = [
    "convert",
    "ConvertResult",
    "ConvertError",
    "CheckpointFormatError",
    "InvalidOptionError",
    "QuantizerUnavailableError",
    "ShapeMismatchError",
    "SourceNotFoundError",
    "UnsupportedModelError",
    "UnsupportedTokenizerError",
    "SUPPORTED_ARCHITECTURES",
    "OUTTYPES",
]
