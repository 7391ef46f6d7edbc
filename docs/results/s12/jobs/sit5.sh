#!/usr/bin/env bash
# Session 12, sitting 5: helper batch 2 (st), then the fused cut's phases with finer marks.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
bash .gpu/batch.sh
mkdir -p /root/buildtr $OUT/lead
xz -dc .prebuilt/libtactic_trace.so.xz > /root/buildtr/libtactic.so
PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/buildtr/libtactic.so timeout 100 python3 scripts/gpu_tactic_bench.py --iters 50 \
  --no-mass-row --contexts 131072,32768 --fractions 0.1 --trace > "$OUT/lead/trace.log" 2>&1
echo "trace rc $?"
cd "$OUT" && tar czf /tmp/r.tgz . && rm -rf "$OUT"/* && mv /tmp/r.tgz "$OUT/"
