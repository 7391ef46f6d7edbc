#!/usr/bin/env bash
# Session 14, sitting 1: can the fused step's cut (DRAM idle ~12 us at 128K / 10%) pull the
# clusters it will stream into the L2? The probe (scripts/probes/l2_prefetch.cu), then the
# library's tactic_prefetch against the twin (tests) and in the per-layer bench.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build
xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
say "library $(cat .prebuilt/COMMIT)"
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so PYTHONUNBUFFERED=1
( nvcc -O3 -arch=sm_90 -o /tmp/l2p scripts/probes/l2_prefetch.cu && timeout 60 /tmp/l2p ) > "$OUT/l2_prefetch.log" 2>&1
say "probe rc $?"
timeout 150 python3 scripts/gpu_tactic_bench.py --iters 100 --no-mass-row --contexts 131072,32768 \
  --fractions 0.1,0.025 --variants "prefetch=50;prefetch=100;prefetch=150;prefetch=0" --out "$OUT/bench.json" > "$OUT/bench.log" 2>&1
say "bench rc $?"
timeout 120 python3 scripts/pytest_shards.py 16 "$OUT/t_" tests/test_tactic_gpu.py \
  -k "fused or group_budget or backend_group or most_clusters" 2>&1 | tail -8 > "$OUT/tests.log"
say "tests: $(tail -1 $OUT/tests.log)"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/gpu.txt"
