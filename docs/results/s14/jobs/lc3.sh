#!/usr/bin/env bash
# Session 14, sitting 3: selection 11 after its loads, histogram and scan were reworked; the
# trace build's phases of 11 and 9 at 128K / 10%; the fused / group-budget tests.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build /root/buildtr
xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
xz -dc .prebuilt/libtactic_trace.so.xz > /root/buildtr/libtactic.so
say "library $(cat .prebuilt/COMMIT)"
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
TACTIC_LIB=/root/build/libtactic.so timeout 120 python3 scripts/gpu_tactic_bench.py --iters 100 --no-mass-row \
  --contexts 131072,32768 --fractions 0.1,0.025 --variants "select=11;select=9;select=11" --out "$OUT/bench.json" > "$OUT/bench.log" 2>&1
say "bench rc $?"
TACTIC_LIB=/root/buildtr/libtactic.so timeout 90 python3 scripts/gpu_tactic_bench.py --iters 50 --no-mass-row \
  --contexts 131072 --fractions 0.1 --trace --variants "select=11" > "$OUT/trace.log" 2>&1
say "trace rc $?"
TACTIC_LIB=/root/build/libtactic.so timeout 150 python3 scripts/pytest_shards.py 16 "$OUT/t_" tests/test_tactic_gpu.py \
  -k "fused or group_budget or backend_group or most_clusters" 2>&1 | tail -8 > "$OUT/tests.log"
say "tests: $(tail -1 $OUT/tests.log)"
grep -l -E "FAILED|Error" $OUT/t_*.log | head -3 | xargs -r tail -40 > "$OUT/fail.log"
rm -f $OUT/t_*.log
