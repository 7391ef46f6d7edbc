#!/usr/bin/env bash
# One device call: build the library for Hopper, run the CUDA tests, run the
# benchmark. Logs and JSON go to $OUT (the device tool brings them back).
#   bash scripts/device_gpu.sh            (from the repository root, on the GPU machine)
# Needs cffi there: wheels in ./whl (see docs/PERFORMANCE.md, GPU section).
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ls whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export TACTIC_COMMIT=${TACTIC_COMMIT:-$(cat COMMIT 2>/dev/null || echo unknown)}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv | tee "$OUT/nvidia_smi.txt"
t0=$(date +%s)
cmake -B build-gpu -G Ninja -DTACTIC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 >"$OUT/build.log" 2>&1 &&
  cmake --build build-gpu -j16 >>"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
export TACTIC_LIB=$PWD/build-gpu/libtactic.so
timeout 240 python3 -m pytest -q -p no:cacheprovider --tb=short -rf tests/test_cuda.py 2>&1 | tee "$OUT/pytest.log" | tail -25
echo "tests: $(( $(date +%s) - t0 )) s"
timeout ${BENCH_TIMEOUT:-300} python3 scripts/gpu_bench.py ${BENCH_ARGS:-} --out "$OUT/gpu_bench.json" 2>&1 | tee "$OUT/bench.log" | tail -60
echo "bench: $(( $(date +%s) - t0 )) s"
# Hardware counters of the two matvec versions on one large Q4_K matrix.
if command -v ncu >/dev/null && [ "${PROFILE:-1}" = 1 ]; then
  timeout 90 ncu --clock-control none -k regex:matvec --section SpeedOfLight --section Occupancy \
    --section WarpStateStats --section LaunchStats python3 scripts/gpu_profile_matvec.py Q4_K >"$OUT/ncu_matvec.txt" 2>&1
  echo "ncu rc=$?"; grep -E "matvec|Throughput|Achieved Occupancy|Registers|Stall|Duration" "$OUT/ncu_matvec.txt" | head -30
  echo "ncu: $(( $(date +%s) - t0 )) s"
fi
# Memory checker over a subset of the tests (Firecracker machines support it).
if command -v compute-sanitizer >/dev/null && [ "${SANITIZE:-1}" = 1 ]; then
  timeout 150 compute-sanitizer --tool memcheck --error-exitcode 99 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py \
    -k "dequantize_matches or (matvec_matches and Q4_K) or (matvec_matches and Q6_K) or attention_indexed or split_counts" \
    >"$OUT/memcheck.log" 2>&1
  echo "memcheck rc=$? ($(grep -c 'ERROR SUMMARY: 0 errors' "$OUT/memcheck.log") clean summaries)"; tail -3 "$OUT/memcheck.log"
  echo "memcheck: $(( $(date +%s) - t0 )) s"
fi
