"""Saving and restoring a Model's evaluated state: in memory (save_state/load_state,
as llama-cpp-python's) and in files (save_session/load_session).

File layout (version 1):
    b"PYTACTIC-KV\\0"            12 bytes
    u32 LE                        length of the JSON header
    JSON header                   format, model fingerprint, n_ctx, n_tokens, state_bytes, meta
    int32 LE * n_tokens           the evaluated tokens
    state_bytes                   the native blob (K/V of the cached positions, last logits,
                                  Tactic's clusters)
    32 bytes                      BLAKE2b-256 of everything before

Writes go to a temporary file in the same folder, fsynced, then renamed over the
target: a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import List, Optional

from ._native import check, ffi, lib
from .errors import CorruptSessionError, InvalidArgumentError, InvalidModelError, SessionMismatchError

MAGIC = b"PYTACTIC-KV\0"
FORMAT = 1
_DIGEST = 32
_FINGERPRINT_SPAN = 1 << 20


def model_fingerprint(path: str, info) -> str:
    """Identifies a model file cheaply: its shape, its size, and hashes of its first
    and last MiB (metadata, tensor table, and weights)."""
    h = hashlib.blake2b(digest_size=16)
    size = os.path.getsize(path)
    shape = (ffi.string(info.architecture).decode(), info.n_vocab, info.n_layer, info.n_embd,
             info.n_head, info.n_head_kv, info.head_dim, info.n_ff, size)
    h.update(repr(shape).encode())
    with open(path, "rb") as f:
        h.update(f.read(_FINGERPRINT_SPAN))
        f.seek(max(0, size - _FINGERPRINT_SPAN))
        h.update(f.read(_FINGERPRINT_SPAN))
    return h.hexdigest()


@dataclass
class ModelState:
    """An in-memory snapshot of a Model's evaluated state (see Model.save_state)."""

    tokens: List[int]
    state: bytes
    n_ctx: int
    fingerprint: str
    meta: dict = field(default_factory=dict)

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)


def capture(model, meta: Optional[dict] = None) -> ModelState:
    ctx = model._c()
    size = ffi.new("size_t *")
    check(lib.tactic_context_state_size(ctx, size), "save_state")
    buf = ffi.new("uint8_t[]", max(1, size[0]))
    check(lib.tactic_context_state_get(ctx, buf, size[0]), "save_state")
    return ModelState(list(model._cached), ffi.buffer(buf, size[0])[:], model.n_ctx, model.fingerprint,
                      dict(meta or {}))


def restore(model, st: ModelState, what: str = "this state") -> None:
    if st.fingerprint != model.fingerprint:
        raise SessionMismatchError(f"{what} was made by another model (fingerprint {st.fingerprint[:12]}, "
                                   f"this model's is {model.fingerprint[:12]})")
    if st.n_ctx != model.n_ctx:
        raise SessionMismatchError(f"{what} was made for a context of {st.n_ctx} tokens; this model's "
                                   f"context holds {model.n_ctx} (load it with n_ctx={st.n_ctx})")
    ctx = model._c()
    model._generation += 1  # an unfinished generation cannot resume over it
    buf = ffi.from_buffer("uint8_t[]", st.state)
    try:
        check(lib.tactic_context_state_set(ctx, buf, len(st.state)), "load_state")
    except InvalidArgumentError as e:
        raise SessionMismatchError(f"{what}: {e}") from None
    except InvalidModelError as e:
        raise CorruptSessionError(f"{what}: {e}") from None
    n_past = int(lib.tactic_context_n_past(ctx))
    if n_past != len(st.tokens):  # a consistent blob with a wrong token list: refuse it
        model.reset()
        raise CorruptSessionError(f"{what} lists {len(st.tokens)} tokens but holds {n_past} positions")
    model._cached = list(st.tokens)


def save_file(model, path, meta: Optional[dict] = None) -> int:
    """Write the model's state to path atomically. Returns the bytes written."""
    st = capture(model, meta)
    path = os.fspath(path)
    header = json.dumps({"format": FORMAT, "model": st.fingerprint, "model_file": os.path.basename(model.path),
                         "n_ctx": st.n_ctx, "n_tokens": st.n_tokens, "state_bytes": len(st.state),
                         "meta": st.meta}).encode()
    parts = [MAGIC, struct.pack("<I", len(header)), header,
             struct.pack(f"<{st.n_tokens}i", *st.tokens), st.state]
    h = hashlib.blake2b(digest_size=_DIGEST)
    for p in parts:
        h.update(p)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            for p in parts:
                f.write(p)
            f.write(h.digest())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return sum(len(p) for p in parts) + _DIGEST


def read_header(path) -> dict:
    """The JSON header of a session file (no checksum check): for listings."""
    with open(path, "rb") as f:
        head = f.read(len(MAGIC) + 4)
        if len(head) < len(MAGIC) + 4 or head[: len(MAGIC)] != MAGIC:
            raise CorruptSessionError(f"{path} is not a pytactic session file")
        (n,) = struct.unpack("<I", head[len(MAGIC):])
        raw = f.read(n)
    try:
        return json.loads(raw)
    except ValueError:
        raise CorruptSessionError(f"{path}: the session header is damaged") from None


def load_file(model, path) -> dict:
    """Restore the model's state from path. Returns the header. Raises
    CorruptSessionError / SessionMismatchError; the model is unchanged then."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    where = f"session {path}"
    if len(data) < len(MAGIC) + 4 or data[: len(MAGIC)] != MAGIC:
        raise CorruptSessionError(f"{path} is not a pytactic session file")
    (n,) = struct.unpack_from("<I", data, len(MAGIC))
    off = len(MAGIC) + 4
    if off + n > len(data):
        raise CorruptSessionError(f"{where} is truncated ({len(data)} bytes; its header alone needs {off + n})")
    try:
        header = json.loads(data[off : off + n])
        n_tokens, state_bytes = int(header["n_tokens"]), int(header["state_bytes"])
        version = int(header["format"])
    except (ValueError, KeyError, TypeError):
        raise CorruptSessionError(f"{where}: the header is damaged") from None
    if version != FORMAT:
        raise CorruptSessionError(f"{where} has format {version}; this pytactic reads format {FORMAT}")
    off += n
    expected = off + 4 * n_tokens + state_bytes + _DIGEST
    if len(data) != expected:
        raise CorruptSessionError(f"{where} is truncated or padded: {len(data)} bytes, its header says {expected}")
    digest = hashlib.blake2b(memoryview(data)[: expected - _DIGEST], digest_size=_DIGEST).digest()
    if digest != data[expected - _DIGEST :]:
        raise CorruptSessionError(f"{where} is corrupted (checksum mismatch)")
    tokens = list(struct.unpack_from(f"<{n_tokens}i", data, off))
    off += 4 * n_tokens
    state = memoryview(data)[off : off + state_bytes]
    restore(model, ModelState(tokens, state, int(header.get("n_ctx", -1)), str(header.get("model", "")),
                              header.get("meta") or {}), where)
    return header
