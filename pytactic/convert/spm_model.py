"""SentencePiece tokenizer.model, read without the sentencepiece package.

tokenizer.model is a protobuf ModelProto. We need only a few fields:
  ModelProto:      1 pieces (repeated SentencePiece), 2 trainer_spec, 3 normalizer_spec
  SentencePiece:   1 piece (string), 2 score (float), 3 type (enum, default NORMAL=1)
  TrainerSpec:     3 model_type (1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR), 35 byte_fallback
  NormalizerSpec:  3 add_dummy_prefix (default true), 4 remove_extra_whitespaces (default true)
The piece types (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte)
are the GGUF token types.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CheckpointFormatError


@dataclass
class SpmModel:
    pieces: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    types: list[int] = field(default_factory=list)
    model_type: int = 1
    byte_fallback: bool = False
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True


class _Reader:
    def __init__(self, buf: bytes, what: str):
        self.buf, self.pos, self.what = buf, 0, what

    def varint(self) -> int:
        shift = result = 0
        while True:
            if self.pos >= len(self.buf) or shift > 63:
                raise CheckpointFormatError(f"{self.what}: truncated or corrupt protobuf varint")
            b = self.buf[self.pos]
            self.pos += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    def fields(self):
        """Yield (field number, wire type, value); length-delimited values are bytes."""
        while self.pos < len(self.buf):
            key = self.varint()
            num, wt = key >> 3, key & 7
            if wt == 0:
                yield num, wt, self.varint()
            elif wt == 1:
                yield num, wt, self._take(8)
            elif wt == 2:
                yield num, wt, self._take(self.varint())
            elif wt == 5:
                yield num, wt, self._take(4)
            else:
                raise CheckpointFormatError(f"{self.what}: unsupported protobuf wire type {wt}")

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise CheckpointFormatError(f"{self.what}: truncated protobuf field")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out


def parse_spm(data: bytes, what: str = "tokenizer.model") -> SpmModel:
    m = SpmModel()
    for num, wt, val in _Reader(data, what).fields():
        if num == 1 and wt == 2:
            piece, score, ptype = None, 0.0, 1
            for n2, w2, v2 in _Reader(val, what).fields():
                if n2 == 1 and w2 == 2:
                    try:
                        piece = v2.decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise CheckpointFormatError(f"{what}: a piece is not valid UTF-8") from e
                elif n2 == 2 and w2 == 5:
                    score = struct.unpack("<f", v2)[0]
                elif n2 == 3 and w2 == 0:
                    ptype = v2
            if piece is None:
                raise CheckpointFormatError(f"{what}: piece #{len(m.pieces)} has no text")
            m.pieces.append(piece)
            m.scores.append(score)
            m.types.append(ptype)
        elif num == 2 and wt == 2:
            for n2, w2, v2 in _Reader(val, what).fields():
                if n2 == 3 and w2 == 0:
                    m.model_type = v2
                elif n2 == 35 and w2 == 0:
                    m.byte_fallback = bool(v2)
        elif num == 3 and wt == 2:
            for n2, w2, v2 in _Reader(val, what).fields():
                if n2 == 3 and w2 == 0:
                    m.add_dummy_prefix = bool(v2)
                elif n2 == 4 and w2 == 0:
                    m.remove_extra_whitespaces = bool(v2)
    if not m.pieces:
        raise CheckpointFormatError(f"{what}: no pieces; not a SentencePiece model")
    bad = [t for t in m.types if not 1 <= t <= 6]
    if bad:
        raise CheckpointFormatError(f"{what}: unknown piece type {bad[0]}")
    return m


def read_spm(path: Path) -> SpmModel:
    return parse_spm(path.read_bytes(), path.name)
