#!/usr/bin/env bash
# Session 14, sitting 4: main after the reverts (native code = session 13's), Tactic per global
# layer of the 8B shape at every fraction issue 11 names (2.5, 5, 10, 25% and the real Gemma's
# P = 0.9 fractions at 16K / 32K, 14.3% and 19.4%), 32K / 64K / 128K, and the fused tests.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build
xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
say "library $(cat .prebuilt/COMMIT)"
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so PYTHONUNBUFFERED=1
timeout 150 python3 scripts/gpu_tactic_bench.py --iters 100 --no-mass-row --contexts 131072,65536,32768 \
  --fractions 0.025,0.05,0.1,0.143,0.194,0.25 --out "$OUT/bench.json" > "$OUT/bench.log" 2>&1
say "bench rc $?"
timeout 220 python3 scripts/pytest_shards.py 16 "$OUT/t_" tests/test_tactic_gpu.py 2>&1 | tail -8 > "$OUT/tests.log"
say "tests: $(tail -1 $OUT/tests.log)"
grep -l -E "FAILED|Error" $OUT/t_*.log | head -3 | xargs -r tail -40 > "$OUT/fail.log"
rm -f $OUT/t_*.log
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/gpu.txt"
