#!/usr/bin/env bash
# Session 12, sitting 3: the fused cut's second version: phases (trace build), the group-budget tests.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build /root/buildtr
xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
xz -dc .prebuilt/libtactic_trace.so.xz > /root/buildtr/libtactic.so
say "library $(cat .prebuilt/COMMIT)"
export PYTHONPATH=/tmp/site:$PWD
TACTIC_LIB=/root/buildtr/libtactic.so timeout 100 python3 scripts/gpu_tactic_bench.py --iters 50 --no-mass-row \
  --contexts 131072,32768 --fractions 0.1,0.025 --trace > "$OUT/trace.log" 2>&1
say "trace bench rc $?"
export TACTIC_LIB=/root/build/libtactic.so
timeout 150 python3 scripts/pytest_shards.py 16 "$OUT/t_" tests/test_tactic_gpu.py \
  -k "group_budget or fused or backend or p1_equals or cand_div" 2>&1 | tail -6 | tee "$OUT/tests.log"
say "tests done"
timeout 60 python3 scripts/gpu_tactic_bench.py --iters 100 --no-mass-row --contexts 131072,32768 \
  --fractions 0.1,0.025 > "$OUT/bench.log" 2>&1
say "bench rc $?"
cd "$OUT" && tar czf /tmp/r.tgz . && rm -rf "$OUT"/* && mv /tmp/r.tgz "$OUT/"
