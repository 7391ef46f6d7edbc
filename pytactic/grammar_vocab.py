"""The bytes every token stands for, read from a GGUF file's tokenizer.ggml.* keys:
what a grammar engine needs to know which tokens can continue a text.

Built from the vocabulary itself (FORMATS.md §4), not through the native tokenizer,
so that tests can hold the two against each other:
  * SPM ("llama"): "▁" is a space; byte tokens "<0xHH>" are one byte.
  * byte-level BPE ("gpt2"): each code point maps back through GPT-2's byte table.
  * user-defined tokens are their text verbatim; control and unknown tokens are
    "special" (they stand for no text); unused ones stand for nothing.
Only the header is parsed (a 262K-token vocabulary takes a fraction of a second;
gguf's GGUFReader maps every tensor and takes far longer).
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

# tokenizer.ggml.token_type values
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# Token texts llama.cpp's loader (and native/src/tokenizer/vocab.cpp) retypes: the
# end-of-generation and fill-in-the-middle ones become control tokens, gpt-oss's
# structural ones user-defined.
_RETYPED_CONTROL = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\uff5cend\u2581of\u2581sentence\uff5c>",
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "<|code_prefix|>", "<|prefix|>",
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>", "<|code_suffix|>", "<|suffix|>",
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<MID>", "<|code_middle|>", "<|middle|>",
    "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",
    "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>",
}
_RETYPED_USER_DEFINED = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"}

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_WANTED = ("tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type")


def _gpt2_byte_decoder() -> Dict[str, int]:
    """GPT-2's printable character -> byte (FORMATS §4.4): bytes 0x21-0x7E, 0xA1-0xAC
    and 0xAE-0xFF stand for themselves, the other 68 for U+0100.. in byte order."""
    out, extra = {}, 0
    for b in range(256):
        if 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or b >= 0xAE:
            out[chr(b)] = b
        else:
            out[chr(0x100 + extra)] = b
            extra += 1
    return out


_BYTE_OF = _gpt2_byte_decoder()


def _byte_level_decode(text: str) -> bytes:
    # A code point outside the table (never in a well-made vocab) keeps its UTF-8.
    out = bytearray()
    for ch in text:
        b = _BYTE_OF.get(ch)
        if b is None:
            out += ch.encode("utf-8")
        else:
            out.append(b)
    return bytes(out)


def _hex_byte(text: str) -> Optional[int]:
    if len(text) == 6 and text.startswith("<0x") and text.endswith(">"):
        try:
            return int(text[3:5], 16)
        except ValueError:
            return None
    return None


def read_tokenizer_keys(path: str) -> dict:
    """tokenizer.ggml.model, .tokens (list of str) and .token_type (list of int) from
    a GGUF header. Raises ValueError for a file that is not a well-formed GGUF."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        buf = memoryview(mm)
        try:
            return _parse(buf)
        finally:
            buf.release()


def _parse(buf) -> dict:
    if bytes(buf[:4]) != b"GGUF":
        raise ValueError("not a GGUF file")
    version, = struct.unpack_from("<I", buf, 4)
    if version < 2:
        raise ValueError(f"GGUF version {version} is not supported")
    _, n_kv = struct.unpack_from("<QQ", buf, 8)
    pos = 24
    n = len(buf)
    out: dict = {}

    def string(p):
        ln, = struct.unpack_from("<Q", buf, p)
        if p + 8 + ln > n:
            raise ValueError("GGUF string runs past the end of the file")
        return bytes(buf[p + 8 : p + 8 + ln]), p + 8 + ln

    for _ in range(n_kv):
        key, pos = string(pos)
        vtype, = struct.unpack_from("<I", buf, pos)
        pos += 4
        key = key.decode("utf-8", "replace")
        if vtype == _STRING:
            val, pos = string(pos)
            if key in _WANTED:
                out[key] = val.decode("utf-8", "replace")
        elif vtype == _ARRAY:
            etype, count = struct.unpack_from("<IQ", buf, pos)
            pos += 12
            if etype == _STRING:
                if key in _WANTED:
                    items = []
                    u64 = struct.Struct("<Q").unpack_from
                    raw = buf.obj if hasattr(buf, "obj") else buf
                    for _ in range(count):  # the hot loop: 262K strings for Gemma
                        ln, = u64(raw, pos)
                        items.append(raw[pos + 8 : pos + 8 + ln].decode("utf-8", "replace"))
                        pos += 8 + ln
                    if pos > n:
                        raise ValueError("GGUF string runs past the end of the file")
                    out[key] = items
                else:
                    for _ in range(count):
                        ln, = struct.unpack_from("<Q", buf, pos)
                        pos += 8 + ln
            elif etype in _SCALAR:
                size = struct.calcsize(_SCALAR[etype])
                if key in _WANTED:
                    out[key] = [v[0] for v in struct.iter_unpack(_SCALAR[etype], buf[pos : pos + size * count])]
                pos += size * count
            else:
                raise ValueError(f"{key}: nested arrays are not expected in the tokenizer keys")
        elif vtype in _SCALAR:
            pos += struct.calcsize(_SCALAR[vtype])
        else:
            raise ValueError(f"{key}: unknown GGUF value type {vtype}")
        if pos > n:
            raise ValueError("GGUF metadata runs past the end of the file")
        if all(k in out for k in _WANTED):
            break  # the rest of the header is not needed
    return out


@dataclass
class TokenBytes:
    """tokens[i]: the bytes token i stands for; special[i]: a control/unknown token
    (no text); byte[i]: a byte-fallback token ("<0xHH>"); kind: "spm" or "bpe"."""

    tokens: List[bytes]
    special: List[bool]
    byte: List[bool]
    kind: str

    def hide_duplicates(self, tokenize: Optional[Callable[[bytes], List[int]]] = None) -> List[bytes]:
        """tokens, with every token that spells the same bytes as another one emptied
        but one: the one the tokenizer makes of those bytes (tokenize, if given and it
        gives a single token of the group), else the first that is not a byte token.
        Gemma's vocabulary spells " " both as "▁" and as "<0x20>"; a grammar engine that
        keeps one token per byte string must keep the one the model was trained on."""
        groups: Dict[bytes, List[int]] = {}
        for i, (t, sp) in enumerate(zip(self.tokens, self.special)):
            if t and not sp:
                groups.setdefault(t, []).append(i)
        out = list(self.tokens)
        for text, ids in groups.items():
            if len(ids) < 2:
                continue
            keep = None
            if tokenize is not None:
                got = tokenize(text)
                if len(got) == 1 and got[0] in ids:
                    keep = got[0]
            if keep is None:
                keep = next((i for i in ids if not self.byte[i]), ids[0])
            for i in ids:
                if i != keep:
                    out[i] = b""
        return out


def token_bytes(path: str) -> TokenBytes:
    keys = read_tokenizer_keys(os.fspath(path))
    texts = keys.get("tokenizer.ggml.tokens")
    if not texts:
        raise ValueError("the GGUF file has no tokenizer.ggml.tokens")
    model = keys.get("tokenizer.ggml.model", "llama")
    types = keys.get("tokenizer.ggml.token_type") or [NORMAL] * len(texts)
    if model not in ("llama", "gpt2"):
        raise ValueError(f"tokenizer.ggml.model {model!r}: only SPM ('llama') and byte-level BPE ('gpt2') are supported")
    spm = model == "llama"
    tokens: List[bytes] = []
    special: List[bool] = []
    byte: List[bool] = []
    for i, text in enumerate(texts):
        t = types[i]
        if not text:
            text = f"[EMPTY_{i}]"  # as the native loader names an empty token
        if text in _RETYPED_CONTROL:
            t = CONTROL
        elif text in _RETYPED_USER_DEFINED:
            t = USER_DEFINED
        byte.append(t == BYTE)
        if t in (CONTROL, UNKNOWN):
            tokens.append(text.encode("utf-8"))
            special.append(True)
            continue
        special.append(False)
        if t == USER_DEFINED:
            tokens.append(text.encode("utf-8"))
        elif t == NORMAL:
            tokens.append(text.replace("\u2581", " ").encode("utf-8") if spm else _byte_level_decode(text))
        elif t == BYTE:
            b = _hex_byte(text)
            if b is not None:
                tokens.append(bytes([b]))
            else:
                tokens.append(text.encode("utf-8") if spm else _byte_level_decode(text))
        else:  # unused / undefined: no text at all
            tokens.append(b"")
    return TokenBytes(tokens, special, byte, "spm" if spm else "bpe")
