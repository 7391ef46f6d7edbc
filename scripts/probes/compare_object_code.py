#!/usr/bin/env python3
"""Per function, whether two builds of the same object files hold the same instructions
(mnemonics and registers; addresses and displacements masked). Used in session 18 to show
that moving the SIMD files from -mavx flags to per-function targets (simd_target.h) left
their kernels' code as it was, where timing on a shared host was too noisy to say.

    python3 scripts/probes/compare_object_code.py OLD_BUILD NEW_BUILD [OBJECT ...]

OBJECT: paths under BUILD/CMakeFiles/tactic.dir (default: every *_avx2 / *_avx512 object).
"""
import re
import subprocess
import sys
from pathlib import Path


def functions(obj):
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(obj)], capture_output=True, text=True,
                         check=True).stdout
    funcs, cur = {}, None
    for ln in out.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.+)>:$", ln)
        if m:
            cur = funcs.setdefault(m.group(1), [])
            continue
        m = re.match(r"^\s+[0-9a-f]+:\s+(\S+)(.*)$", ln)
        if m and cur is not None:
            cur.append(m.group(1) + re.sub(r"0x[0-9a-f]+|[0-9a-f]+ <[^>]*>", "X", m.group(2)))
    return funcs


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    old, new = (Path(p) / "CMakeFiles" / "tactic.dir" for p in sys.argv[1:3])
    objs = sys.argv[3:] or sorted(str(p.relative_to(old)) for p in old.rglob("*_avx*.o"))
    for o in objs:
        a, b = functions(old / o), functions(new / o)
        differ = [k for k in a if k in b and a[k] != b[k]]
        same = sum(1 for k in a if k in b and a[k] == b[k])
        print(f"{o}: {same} identical, {len(differ)} differ, only old {len(set(a) - set(b))}, "
              f"only new {len(set(b) - set(a))}")
        for k in differ:
            print(f"   differ: {k} ({len(a[k])} -> {len(b[k])} instructions)")


if __name__ == "__main__":
    main()
