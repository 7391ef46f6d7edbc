"""Output types: which GGML type each tensor gets (the llama.cpp-style mix), and the
quantization itself. F16/BF16/Q8_0/Q4_0/Q4_1/Q5_0/Q5_1 use gguf.quants (numpy);
K-quants use the runtime's native quantizer, tactic_quantize, from libtactic.

The Q4_K_M / Q5_K_M mix follows llama.cpp's llama_tensor_get_type:
- default Q4_K (Q5_K for q5_k_m);
- attn_v and ffn_down get Q6_K in the first and last eighth of the layers and in
  every third layer between them (llama.cpp's use_more_bits);
- output.weight, or token_embd.weight when the output is tied to it, gets Q6_K;
- a row length that is not a multiple of 256 falls back as llama.cpp does:
  Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0; one not a multiple of 32 -> F16.
For the legacy 4/5-bit types the output (or tied embedding) is Q8_0, computed in
numpy (llama.cpp's quantize tool would use Q6_K there).
Norms, biases and every other 1-D tensor stay F32.
"""

from __future__ import annotations

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf import LlamaFileType as FT

from .errors import InvalidOptionError, QuantizerUnavailableError
from .tensor_map import T, TensorPlan

# --outtype name -> (default type for 2-D weights, general.file_type, mix)
OUTTYPES = {
    "f32": (Q.F32, FT.ALL_F32, None),
    "f16": (Q.F16, FT.MOSTLY_F16, None),
    "bf16": (Q.BF16, FT.MOSTLY_BF16, None),
    "q8_0": (Q.Q8_0, FT.MOSTLY_Q8_0, None),
    "q4_0": (Q.Q4_0, FT.MOSTLY_Q4_0, "legacy"),
    "q4_1": (Q.Q4_1, FT.MOSTLY_Q4_1, "legacy"),
    "q5_0": (Q.Q5_0, FT.MOSTLY_Q5_0, "legacy"),
    "q5_1": (Q.Q5_1, FT.MOSTLY_Q5_1, "legacy"),
    "q4_k": (Q.Q4_K, FT.MOSTLY_Q4_K_S, "k"),
    "q5_k": (Q.Q5_K, FT.MOSTLY_Q5_K_S, "k"),
    "q6_k": (Q.Q6_K, FT.MOSTLY_Q6_K, "k"),
    "q4_k_m": (Q.Q4_K, FT.MOSTLY_Q4_K_M, "k_m"),
    "q5_k_m": (Q.Q5_K, FT.MOSTLY_Q5_K_M, "k_m"),
}
NATIVE_TYPES = {Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K}
_FALLBACK = {Q.Q4_K: Q.Q5_0, Q.Q5_K: Q.Q5_1, Q.Q6_K: Q.Q8_0, Q.Q2_K: Q.Q4_0, Q.Q3_K: Q.Q4_0}


def use_more_bits(i: int, n: int) -> bool:
    """llama.cpp's choice of layers that get more bits in the _M mixes."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _fits(qtype: Q, n_per_row: int) -> bool:
    return n_per_row % gguf.GGML_QUANT_SIZES[qtype][0] == 0


def _with_fallback(qtype: Q, n_per_row: int) -> Q:
    while not _fits(qtype, n_per_row):
        qtype = _FALLBACK.get(qtype, Q.F16)
    return qtype


def choose_types(plans: list[TensorPlan], outtype: str, n_layer: int) -> dict[str, Q]:
    try:
        base, _, mix = OUTTYPES[outtype]
    except KeyError:
        raise InvalidOptionError(f"unknown outtype {outtype!r}; choose one of {', '.join(OUTTYPES)}") from None
    has_output = any(p.kind == T.OUTPUT for p in plans)
    out: dict[str, Q] = {}
    for p in plans:
        if len(p.shape) < 2 or base == Q.F32:
            out[p.name] = Q.F32
            continue
        is_output = p.kind == T.OUTPUT or (p.kind == T.TOKEN_EMBD and not has_output)
        t = base
        if mix == "legacy" and is_output:
            t = Q.Q8_0
        elif mix in ("k", "k_m") and is_output:
            t = Q.Q6_K
        elif mix == "k_m" and p.kind in (T.ATTN_V, T.FFN_DOWN) and use_more_bits(p.layer, n_layer):
            t = Q.Q6_K
        out[p.name] = _with_fallback(t, p.shape[-1])
    return out


def file_type(outtype: str) -> int:
    return int(OUTTYPES[outtype][1])


def nbytes(qtype: Q, shape: tuple[int, ...]) -> int:
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    n = int(np.prod(shape))
    return n // block * size


class NativeQuantizer:
    """tactic_quantize from libtactic, loaded on first use."""

    def __init__(self) -> None:
        try:
            from .. import _native
        except ImportError as e:
            raise QuantizerUnavailableError(
                f"K-quant output needs the native library libtactic ({e}); "
                "use --outtype f16/bf16/q8_0/q4_0, or build the library"
            ) from e
        if not hasattr(_native.lib, "tactic_quantize"):
            raise QuantizerUnavailableError(
                f"K-quant output needs tactic_quantize, which {_native.LIB_PATH} does not export; "
                "rebuild libtactic, or use --outtype f16/bf16/q8_0/q4_0"
            )
        self._native = _native

    def check(self, qtype: Q) -> None:
        """Fail before any output is written if this type cannot be quantized."""
        self.quantize(np.zeros((1, 256), np.float32), qtype)

    def quantize(self, data: np.ndarray, qtype: Q) -> np.ndarray:
        ffi, lib = self._native.ffi, self._native.lib
        src = np.ascontiguousarray(data, dtype=np.float32)
        n_rows, n_per_row = int(np.prod(src.shape[:-1])), int(src.shape[-1])
        dst = np.empty(nbytes(qtype, src.shape), dtype=np.uint8)
        status = lib.tactic_quantize(
            int(qtype), ffi.cast("const float *", ffi.from_buffer(src)), n_rows, n_per_row,
            ffi.from_buffer(dst), dst.nbytes,
        )
        if status != 0:
            raise QuantizerUnavailableError(
                f"the native quantizer failed for {qtype.name}: {self._native.last_error() or f'status {status}'}"
            )
        return dst


def native_quantizer_for(types: dict) -> NativeQuantizer | None:
    """The native quantizer when some of `types` (tensor name -> type) need it, checked
    for each of them before any output is written; None when none does."""
    needed = sorted({t for t in types.values() if t in NATIVE_TYPES})
    if not needed:
        return None
    native = NativeQuantizer()
    for t in needed:
        native.check(t)
    return native


def quantize(data: np.ndarray, qtype: Q, native: NativeQuantizer | None) -> np.ndarray:
    """The bytes (or float array) written for `data` as `qtype`."""
    if qtype == Q.F32:
        return np.ascontiguousarray(data, dtype=np.float32)
    if qtype == Q.F16:
        return data.astype(np.float16)
    if qtype in NATIVE_TYPES:
        if native is None:
            raise QuantizerUnavailableError(f"{qtype.name} needs the native quantizer")
        return native.quantize(data, qtype)
    return gguf.quants.quantize(data, qtype)
