"""Test helper: the C ABI's tokenizer calls on a GGUF loaded with vocab_only."""

from pytactic._native import check, ffi, lib
from pytactic.lowlevel import load_model


class NativeVocab:
    """The C ABI's tokenizer calls on a vocab-only model."""

    def __init__(self, path):
        self.model = load_model(path, vocab_only=True)

    def tokenize(self, text, add_special=False, parse_special=False):
        data = text.encode("utf-8") if isinstance(text, str) else text
        n = ffi.new("int32_t *")
        cap = len(data) + 4
        buf = ffi.new("int32_t[]", cap)
        check(lib.tactic_tokenize(self.model, data, len(data), add_special, parse_special, buf, cap, n))
        return list(buf[0 : n[0]])

    def piece(self, token, special=False):
        n = ffi.new("int32_t *")
        lib.tactic_token_to_piece(self.model, token, special, ffi.NULL, 0, n)
        buf = ffi.new("char[]", max(n[0], 1))
        check(lib.tactic_token_to_piece(self.model, token, special, buf, n[0], n))
        return ffi.buffer(buf, n[0])[:]

    def detokenize(self, ids, special=False):
        arr = ffi.new("int32_t[]", ids)
        n = ffi.new("int32_t *")
        lib.tactic_detokenize(self.model, arr, len(ids), special, ffi.NULL, 0, n)
        buf = ffi.new("char[]", max(n[0], 1))
        check(lib.tactic_detokenize(self.model, arr, len(ids), special, buf, n[0], n))
        return ffi.buffer(buf, n[0])[:].decode("utf-8")
