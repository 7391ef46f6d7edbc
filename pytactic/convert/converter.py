"""The conversion: checkpoint directory -> one GGUF file.

The GGUF is written to a temporary file beside the output and renamed into place only
once complete, so a failure never leaves a partial file behind. Tensors are read,
fixed and quantized one at a time, in file order, after the header is written."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q

from .errors import InvalidOptionError
from .hparams import HParams, read_hparams, write_hparams
from .quantize import OUTTYPES, choose_types, file_type, native_quantizer_for, nbytes, quantize
from .safetensors_io import open_checkpoint
from .source import read_json, resolve_source
from .tensor_map import TensorPlan, plan_tensors
from .vocab import Vocab, load_vocab, write_vocab

@dataclass
class ConvertResult:
    path: Path
    arch: str
    outtype: str
    n_tensors: int
    types: dict[str, str]  # GGUF tensor name -> GGML type name
    n_bytes: int


def default_outfile(name: str, outtype: str) -> Path:
    """llama.cpp's naming: <name>-<outtype>.gguf, in the current directory (a repo id's
    files live in the HF cache, which is no place for outputs)."""
    return Path.cwd() / f"{name}-{outtype}.gguf"


def convert(src: str | os.PathLike, outfile: str | os.PathLike | None = None, outtype: str = "f16",
            progress: bool = False, revision: str | None = None) -> ConvertResult:
    """Convert the HF checkpoint at `src` (a directory or a repo id) to GGUF."""
    outtype = outtype.lower()
    if outtype not in OUTTYPES:
        raise InvalidOptionError(f"unknown outtype {outtype!r}; choose one of {', '.join(OUTTYPES)}")
    directory = resolve_source(src, revision)
    config = read_json(directory / "config.json", required=True)
    name = Path(str(src).rstrip("/")).name or "model"
    hp = read_hparams(config, name)
    refs = open_checkpoint(directory)
    plans = plan_tensors(hp, refs)
    vocab = load_vocab(directory, hp.n_vocab, config)
    types = choose_types(plans, outtype, hp.n_layer)

    native = native_quantizer_for(types)
    out = Path(outfile) if outfile is not None else default_outfile(name, outtype)
    n_bytes = write_gguf(out, hp, vocab, plans, types, outtype,
                         lambda p, qtype: quantize(p.load(), qtype, native), progress)
    return ConvertResult(out, hp.arch, outtype, len(plans), {k: v.name for k, v in types.items()}, n_bytes)


def write_gguf(out: Path, hp: HParams, vocab: Vocab, plans: list[TensorPlan], types: dict, outtype: str,
               encode: Callable[[TensorPlan, Q], np.ndarray], progress: bool = False) -> int:
    """Write the GGUF: metadata from hp and vocab, then each plan's tensor as
    encode(plan, type) returns it (the bytes, or a float array for F32/F16), one at a
    time. Atomic: a temporary file beside `out`, renamed into place once complete."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(fd)
    try:
        n_bytes = _write(Path(tmp), hp, vocab, plans, types, outtype, encode, progress)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it private
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return n_bytes


def _write(path: Path, hp: HParams, vocab: Vocab, plans: list[TensorPlan], types: dict,
           outtype: str, encode: Callable[[TensorPlan, Q], np.ndarray], progress: bool) -> int:
    w = gguf.GGUFWriter(path, hp.arch)
    try:
        n_params = sum(int(np.prod(p.shape)) for p in plans)
        w.add_name(hp.name)
        w.add_basename(hp.name)
        w.add_size_label(gguf.size_label(n_params, 0, 0, 0))
        w.add_type(gguf.GGUFType.MODEL)
        w.add_file_type(file_type(outtype))
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        write_hparams(w, hp)
        write_vocab(w, vocab)
        total = 0
        for p in plans:
            q = types[p.name]
            size = nbytes(q, p.shape)
            # the element shape with raw_dtype: gguf derives nothing from the numpy dtype here
            w.add_tensor_info(p.name, p.shape, np.dtype(np.float32), size, raw_dtype=q)
            total += size
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(plans, desc=f"converting to {outtype}", unit="tensor")
        for p in bar if bar is not None else plans:
            if bar is not None:
                bar.set_postfix_str(p.name, refresh=False)
            w.write_tensor_data(encode(p, types[p.name]))
        return total
    finally:
        w.close()

