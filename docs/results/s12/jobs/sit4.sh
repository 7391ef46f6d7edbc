#!/usr/bin/env bash
# Session 12, sitting 4: helper batch 1 (st), then the fused cut's phases with the candidates' counts.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
bash .gpu/batch.sh
mkdir -p /root/buildtr $OUT/lead
xz -dc .prebuilt/libtactic_trace.so.xz > /root/buildtr/libtactic.so
PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/buildtr/libtactic.so timeout 100 python3 scripts/gpu_tactic_bench.py --iters 50 \
  --no-mass-row --contexts 131072,32768 --fractions 0.1,0.025 --trace > "$OUT/lead/trace.log" 2>&1
echo "trace rc $?"
cd "$OUT" && tar czf /tmp/r.tgz . && rm -rf "$OUT"/* && mv /tmp/r.tgz "$OUT/"
