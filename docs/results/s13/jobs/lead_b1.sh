#!/usr/bin/env bash
# Session 13, batch 1 (lead): tactic_stream 8 on the new cut (bench against 0 in the same
# process, the fused/group-budget tests), and two probes for the next step of the fused
# kernel: clusters of blocks resident at once, and the read bandwidth of scattered runs.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
P=scripts/probes
( nvcc -O3 -arch=sm_90 -o /tmp/co $P/cluster_occupancy.cu && /tmp/co ) > "$OUT/cluster_occupancy.log" 2>&1
( nvcc -O3 -arch=sm_90 -o /tmp/rb $P/run_bandwidth.cu && timeout 60 /tmp/rb ) > "$OUT/run_bandwidth.log" 2>&1
say "probes done"
timeout 100 python3 scripts/gpu_tactic_bench.py --iters 100 --no-mass-row --contexts 131072,32768 \
  --fractions 0.1,0.025 --variants "stream=0;stream=8" --out "$OUT/bench.json" > "$OUT/bench.log" 2>&1
say "bench rc $?"
timeout 90 python3 scripts/pytest_shards.py 16 "$OUT/t_" tests/test_tactic_gpu.py \
  -k "fused or group_budget or backend_group or most_clusters" 2>&1 | tail -8 > "$OUT/tests.log"
say "tests: $(tail -1 $OUT/tests.log)"
