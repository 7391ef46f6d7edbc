#!/usr/bin/env python3
"""Fail if a SIMD kernel file's object shares a copy of a function, compiled with wide
instructions, with the rest of the library.

The *_avx2.cpp / *_avx512.cpp files are the only code compiled for those instruction
sets, and are called only after a run-time CPU check. A template or inline function
defined in one of them with external (weak) linkage and also defined or used by another
object is one function for the linker, which keeps one copy: if it keeps the SIMD file's,
code that runs on any x86-64 executes AVX-512 (an illegal instruction on a CPU without
it). This happened with std::vector<int>::_M_fill_assign while those files were built
with -mavx512f; native/src/simd_target.h now gives the target to their own functions only.

Usage: python3 scripts/check_simd_symbols.py BUILD_DIR   (a build of the tactic target;
.ci/native-tests runs it on its plain build). Exit status 1 lists each offending symbol.
"""
import re
import subprocess
import sys
from pathlib import Path

SIMD = re.compile(r"_avx(2|512)\.cpp\.o$")
WIDE = re.compile(r"^\s*[0-9a-f]+:\s+(v[a-z0-9]+|k[a-z]+[bwdq])\b")  # VEX / EVEX mnemonics, mask ops


def symbols(obj, types="TWV"):
    """(external definitions of the given nm types, undefined references) of an object, mangled."""
    out = subprocess.run(["nm", "--defined-only", "-g", str(obj)], capture_output=True, text=True, check=True).stdout
    defs = {ln.split()[-1] for ln in out.splitlines() if len(ln.split()) == 3 and ln.split()[1] in types}
    out = subprocess.run(["nm", "-u", str(obj)], capture_output=True, text=True, check=True).stdout
    refs = {ln.split()[-1] for ln in out.splitlines() if ln.strip()}
    return defs, refs


def wide_instructions(obj, sym):
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--disassemble={sym}", str(obj)],
                         capture_output=True, text=True, check=True).stdout
    return [ln.strip() for ln in out.splitlines() if WIDE.match(ln)]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    objs = sorted(Path(sys.argv[1]).glob("CMakeFiles/tactic.dir/**/*.o"))
    simd = [o for o in objs if SIMD.search(o.name)]
    if not simd:
        sys.exit(f"no *_avx2 / *_avx512 objects under {sys.argv[1]}/CMakeFiles/tactic.dir")
    shared = set()  # every symbol another object defines or uses
    for o in objs:
        if o not in simd:
            d, u = symbols(o)
            shared |= d | u
    bad = []
    for o in simd:
        d, _ = symbols(o, "WV")  # (weak: one copy kept for the library; the files' own entry points are strong)
        for sym in sorted(d & shared):
            wide = wide_instructions(o, sym)
            if wide:
                bad.append(f"{o.name}: {sym} ({len(wide)} wide instructions, first: {wide[0]})")
    print(f"checked {len(simd)} SIMD objects against {len(objs) - len(simd)} others")
    if bad:
        print("SIMD code shared with the rest of the library:\n  " + "\n  ".join(bad))
        sys.exit(1)


if __name__ == "__main__":
    main()
