"""The public C header stays the user-facing ABI: test, benchmark and research hooks
live in tactic_internal.h, and pytactic's own modules (all but pytactic.lowlevel, the
wrapper for tests and scripts) call only what tactic.h declares."""

import re
from pathlib import Path

from pytactic import _native

ROOT = Path(__file__).resolve().parents[1]
DECL = re.compile(r"\b(tactic_\w+)\s*\(")


def declared(cdef):
    return set(DECL.findall(cdef))


def test_the_headers_declare_disjoint_sets():
    public, internal = declared(_native.PUBLIC_CDEF), declared(_native.INTERNAL_CDEF)
    assert public and internal
    assert not public & internal


def test_hooks_are_not_in_the_public_header():
    public = declared(_native.PUBLIC_CDEF)
    hooks = [f for f in public if f.startswith("tactic_bench_") or
             (f.startswith("tactic_cuda_") and f not in ("tactic_cuda_device_count", "tactic_cuda_device_name"))]
    assert not hooks
    assert not public & {"tactic_set_selection", "tactic_set_debug", "tactic_get_head_eval", "tactic_vec_dot"}


def test_pytactic_modules_call_only_the_public_abi():
    public = declared(_native.PUBLIC_CDEF)
    used = {}
    for path in (ROOT / "pytactic").rglob("*.py"):
        if path.name in ("lowlevel.py", "_native.py"):
            continue
        for name in re.findall(r"\blib\.(tactic_\w+)", path.read_text()):
            used.setdefault(name, set()).add(path.relative_to(ROOT).as_posix())
    outside = {name: sorted(files) for name, files in used.items() if name not in public}
    assert not outside, f"pytactic modules call hooks from tactic_internal.h: {outside}"
