"""How long nvcc takes on native/cuda/*.cu: per file, for one architecture and for the
default list CMakeLists.txt uses without a GPU (SASS 80/86/89/90 + PTX 90). Prints CPU
seconds (user + sys of nvcc and its children: what a 2-core CI pays, whatever else runs
on the machine) and wall seconds (which depend on the machine's load).

    python scripts/cuda_compile_cost.py [--nvcc PATH] [files...]
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ONE = ["--generate-code=arch=compute_80,code=[sm_80]"]
DEFAULT = ONE + ["--generate-code=arch=compute_86,code=[sm_86]", "--generate-code=arch=compute_89,code=[sm_89]",
                 "--generate-code=arch=compute_90,code=[compute_90,sm_90]"]


def compile_cost(nvcc, src, archs, out):
    """(cpu_s, wall_s) of one nvcc compile, flags as CMake's Release build gives them."""
    cmd = [nvcc, "-O3", "-DNDEBUG", "-std=c++17", "-DTACTIC_HAVE_CUDA=1", "-DTACTIC_X86=1",
           f"-I{ROOT / 'native/include'}", f"-I{ROOT / 'native/src'}", f"-I{ROOT / 'native/cuda'}",
           *archs, "-Xcompiler=-fPIC", "-x", "cu", "-c", str(src), "-o", out]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nvcc", default="nvcc")
    ap.add_argument("files", nargs="*", type=Path)
    args = ap.parse_args()
    files = args.files or sorted((ROOT / "native" / "cuda").glob("*.cu"))
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    print(f"{'file':<20}{'lines':>7}{'cpu 1 arch':>12}{'cpu default':>13}{'wall default':>14}", flush=True)
    total = [0.0, 0.0, 0.0]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "x.o")
        for f in files:
            one, _ = compile_cost(args.nvcc, f, ONE, out)
            default, wall = compile_cost(args.nvcc, f, DEFAULT, out)
            for i, v in enumerate((one, default, wall)):
                total[i] += v
            lines = len(f.read_text().splitlines())
            print(f"{f.name:<20}{lines:>7}{one:>11.1f}s{default:>12.1f}s{wall:>13.1f}s", flush=True)
    print(f"{'total':<20}{'':>7}{total[0]:>11.1f}s{total[1]:>12.1f}s{total[2]:>13.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
