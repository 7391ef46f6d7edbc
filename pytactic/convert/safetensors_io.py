"""Lazy safetensors reading without torch.

A safetensors file is an 8-byte little-endian header length, a JSON header that maps
each tensor name to {dtype, shape, data_offsets}, then the raw data. We parse the
header ourselves, validate every extent against the file size, and read one tensor at
a time on demand, so converting a model needs memory for about one tensor.

Why not the safetensors package: its numpy loader reads whole files and has no bf16
(numpy has no bfloat16 dtype; most checkpoints are bf16), and its lazy safe_open
needs torch to hand out bf16 tensors. This reader turns bf16 and f16 into float32
itself, so converting needs neither torch nor safetensors.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import CheckpointFormatError, SourceNotFoundError, UnsupportedModelError

# Element sizes of the dtypes we can turn into float32.
_ITEMSIZE = {"F32": 4, "F16": 2, "BF16": 2}
_MAX_HEADER = 100 * 1024 * 1024  # the format's own cap on the JSON header

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


@dataclass(frozen=True)
class TensorRef:
    """Where one tensor lives; load() reads it as float32."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    path: Path
    offset: int  # absolute byte offset in the file
    nbytes: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def load(self) -> np.ndarray:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            raw = f.read(self.nbytes)
        if len(raw) != self.nbytes:
            raise CheckpointFormatError(f"{self.path.name}: tensor '{self.name}' is truncated")
        return to_float32(np.frombuffer(raw, dtype=np.uint8), self.dtype).reshape(self.shape)


def to_float32(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Reinterpret little-endian bytes of F32/F16/BF16 as a float32 array."""
    if dtype == "F32":
        return raw.view("<f4").astype(np.float32, copy=True)
    if dtype == "F16":
        return raw.view("<f2").astype(np.float32)
    if dtype == "BF16":
        # bf16 is the top half of an f32: widen the bits, shift them up.
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    raise UnsupportedModelError(f"tensor dtype {dtype} is not supported (F32, F16 and BF16 are)")


def read_header(path: Path) -> dict[str, TensorRef]:
    """Parse and validate one .safetensors file's header."""
    name = path.name
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointFormatError(f"{name}: too short to be a safetensors file")
            n = int.from_bytes(head, "little")
            if n > _MAX_HEADER or n > size - 8:
                raise CheckpointFormatError(
                    f"{name}: header length {n} exceeds the file ({size} bytes): truncated or not safetensors"
                )
            text = f.read(n)
    except OSError as e:
        raise SourceNotFoundError(f"{name}: cannot read: {e}") from e
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointFormatError(f"{name}: the JSON header is corrupt ({e})") from e
    if not isinstance(header, dict):
        raise CheckpointFormatError(f"{name}: the JSON header is not an object")

    data_start = 8 + n
    data_size = size - data_start
    refs: dict[str, TensorRef] = {}
    for tname, info in header.items():
        if tname == "__metadata__":
            continue
        try:
            dtype = str(info["dtype"])
            shape = tuple(int(d) for d in info["shape"])
            begin, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointFormatError(f"{name}: tensor '{tname}' has a malformed header entry") from e
        if any(d < 0 for d in shape) or not 0 <= begin <= end:
            raise CheckpointFormatError(f"{name}: tensor '{tname}' has a negative shape or offsets")
        if end > data_size:
            raise CheckpointFormatError(
                f"{name}: tensor '{tname}' ends at byte {end} of the data but the file holds only "
                f"{data_size}: the file is truncated"
            )
        ref = TensorRef(tname, dtype, shape, path, data_start + begin, end - begin)
        if dtype in _ITEMSIZE and ref.n_elements * _ITEMSIZE[dtype] != ref.nbytes:
            raise CheckpointFormatError(
                f"{name}: tensor '{tname}' of shape {list(shape)} {dtype} should take "
                f"{ref.n_elements * _ITEMSIZE[dtype]} bytes, its offsets give {ref.nbytes}"
            )
        refs[tname] = ref
    return refs


def open_checkpoint(directory: Path) -> dict[str, TensorRef]:
    """All tensors of a checkpoint: model.safetensors, or the shards named by
    model.safetensors.index.json, or any *.safetensors files present."""
    index = directory / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise CheckpointFormatError(f"{INDEX_FILE}: malformed ({e})") from e
        shards = sorted(set(weight_map.values()))
        missing = [s for s in shards if not (directory / s).is_file()]
        if missing:
            raise SourceNotFoundError(
                f"{INDEX_FILE} names shard(s) that are missing from {directory}: {', '.join(missing)}"
            )
        refs: dict[str, TensorRef] = {}
        for shard in shards:
            refs.update(read_header(directory / shard))
        absent = [t for t in weight_map if t not in refs]
        if absent:
            raise CheckpointFormatError(
                f"tensor '{absent[0]}' is listed in {INDEX_FILE} under {weight_map[absent[0]]} but that shard lacks it"
            )
        return refs
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        others = [p.name for p in directory.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".gguf")]
        hint = f" (found {', '.join(others)}; only safetensors checkpoints are supported)" if others else ""
        raise SourceNotFoundError(f"no .safetensors weights in {directory}{hint}")
    refs = {}
    for p in files:
        for tname, ref in read_header(p).items():
            if tname in refs:
                raise CheckpointFormatError(f"tensor '{tname}' appears in both {refs[tname].path.name} and {p.name}")
            refs[tname] = ref
    return refs
