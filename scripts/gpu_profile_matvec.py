"""Runs decode's 8-bit-activation matvec (v5, the default) once per FFN shape and type, for a
profiler to look at, e.g.
  ncu --clock-control none --section SpeedOfLight --section WarpStateStats \
      -k regex:matvec_q8 python3 scripts/gpu_profile_matvec.py Q4_K Q6_K
(x is quantized once per call by its own kernel, which the regex above also matches.)"""
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from pytactic._native import ffi, lib  # noqa: E402
from test_cuda import TYPES, random_rows  # noqa: E402

rng = np.random.default_rng(0)
for name in sys.argv[1:] or ["Q4_K"]:
    for n_rows, n_cols in ((14336, 4096), (4096, 14336)):
        data = random_rows(rng, name, n_rows, n_cols)
        x = rng.standard_normal(n_cols).astype(np.float32)
        y = np.empty(n_rows, np.float32)
        lib.tactic_cuda_set_option(b"matvec_version", 3)  # the 8-bit-activation path decode runs
        st = lib.tactic_cuda_matvec(TYPES[name][0], data, len(data), n_rows, n_cols,
                                    ffi.cast("float *", ffi.from_buffer(x)), ffi.cast("float *", ffi.from_buffer(y)))
        assert st == 0, ffi.string(lib.tactic_last_error())
        print(name, n_rows, n_cols, "done", flush=True)
