"""Loads libtactic with cffi in ABI mode. The declarations are read from the C
headers, so Python and C cannot drift apart: tactic.h (the user-facing ABI, all that
pytactic's own modules call; tests/test_public_header.py holds them to it) and
tactic_internal.h (test, benchmark and research hooks, for tests, scripts and
pytactic.lowlevel)."""

import os
import re
import sys
from pathlib import Path

from cffi import FFI

from .errors import STATUS_ERRORS, InternalError

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parent
_LIB_NAME = {"darwin": "libtactic.dylib", "win32": "tactic.dll"}.get(sys.platform, "libtactic.so")


def _find_header(name: str = "tactic.h") -> Path:
    for p in (_HERE / name, _REPO / "native" / "include" / name):
        if p.is_file():
            return p
    raise ImportError(f"pytactic: {name} not found; reinstall the package")


def _find_library() -> Path:
    env = os.environ.get("TACTIC_LIB")
    if env:
        if not Path(env).is_file():
            raise ImportError(f"pytactic: TACTIC_LIB={env} does not exist")
        return Path(env)
    candidates = [_HERE / _LIB_NAME]
    # Running from a source checkout whose package was also pip-installed: the
    # installed copy carries the built library.
    try:
        from importlib.metadata import distribution

        candidates.append(Path(distribution("pytactic").locate_file(f"pytactic/{_LIB_NAME}")))
    except Exception:
        pass
    # A source checkout built with `cmake -B build`: handy for development.
    candidates += [_REPO / "build" / _LIB_NAME]
    for p in candidates:
        if p.is_file():
            return p
    raise ImportError(
        "pytactic: the native library was not found. Install the package with "
        "`pip install .`, or build it with `cmake -B build && cmake --build build` "
        "and set TACTIC_LIB to build/" + _LIB_NAME
    )


def _cdef_source(header: str) -> str:
    m = re.search(r"/\* CDEF BEGIN \*/(.*)/\* CDEF END \*/", header, re.S)
    if not m:
        raise ImportError("pytactic: a header without CDEF markers")
    body = m.group(1)
    body = "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("#"))
    return body.replace("TACTIC_API ", "")


ffi = FFI()
PUBLIC_CDEF = _cdef_source(_find_header("tactic.h").read_text())
INTERNAL_CDEF = _cdef_source(_find_header("tactic_internal.h").read_text())
ffi.cdef(PUBLIC_CDEF + INTERNAL_CDEF)
LIB_PATH = _find_library()
lib = ffi.dlopen(str(LIB_PATH))


def last_error() -> str:
    return ffi.string(lib.tactic_last_error()).decode("utf-8", "replace")


def check(status: int, what: str = "") -> None:
    """Raise the typed error for a non-zero status, with the native message."""
    if status == 0:
        return
    cls = STATUS_ERRORS.get(status, InternalError)
    msg = last_error() or f"native call failed with status {status}"
    raise cls(f"{what}: {msg}" if what else msg)
