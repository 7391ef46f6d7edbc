#!/usr/bin/env bash
# Session 14, sitting 2: tactic_select 11 (every block of a KV head cuts the whole KV head in
# shared memory: no barriers) against 9 (the two-barrier cut), per layer, and its tests.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build
xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
say "library $(cat .prebuilt/COMMIT)"
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so PYTHONUNBUFFERED=1
timeout 200 python3 scripts/gpu_tactic_bench.py --iters 100 --no-mass-row --contexts 131072,65536,32768 \
  --fractions 0.1,0.025,0.05,0.25 --variants "select=11;select=9;select=11" --out "$OUT/bench.json" > "$OUT/bench.log" 2>&1
say "bench rc $?"
timeout 150 python3 scripts/pytest_shards.py 16 "$OUT/t_" tests/test_tactic_gpu.py \
  -k "fused or group_budget or backend_group or most_clusters" 2>&1 | tail -8 > "$OUT/tests.log"
say "tests: $(tail -1 $OUT/tests.log)"
grep -l -E "FAILED|Error" $OUT/t_*.log | head -3 | xargs -r tail -40 > "$OUT/fail.log"
rm -f $OUT/t_*.log
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/gpu.txt"
