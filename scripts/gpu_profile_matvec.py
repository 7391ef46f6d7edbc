"""Runs one large Q4_K matvec per kernel version, for a profiler to look at:
  ncu --clock-control none -k regex:matvec python3 scripts/gpu_profile_matvec.py"""
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from pytactic._native import ffi, lib  # noqa: E402
from test_cuda import TYPES, random_rows  # noqa: E402

name = sys.argv[1] if len(sys.argv) > 1 else "Q4_K"
rng = np.random.default_rng(0)
n_rows, n_cols = 14336, 4096
data = random_rows(rng, name, n_rows, n_cols)
x = rng.standard_normal(n_cols).astype(np.float32)
y = np.empty(n_rows, np.float32)
for version, rows in ((1, 2), (2, 2)):
    lib.tactic_cuda_set_option(b"matvec_version", version)
    lib.tactic_cuda_set_option(b"matvec_rows", rows)
    st = lib.tactic_cuda_matvec(TYPES[name][0], data, len(data), n_rows, n_cols,
                                ffi.cast("float *", ffi.from_buffer(x)), ffi.cast("float *", ffi.from_buffer(y)))
    assert st == 0, ffi.string(lib.tactic_last_error())
print("done")
