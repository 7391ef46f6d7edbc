#!/usr/bin/env bash
# Session 11, lead: the final sitting on merged main (library built here for sm_90 from the
# commit in .prebuilt/COMMIT): Tactic's GPU tests in 16 shards (the harness fix of d7d57fb,
# P = 1 and tactic_cand_div's tests), then the per-layer step at the mass target, 8B shape,
# with the kernels' candidate target of div 4 (p 0.9) and div 16 (p 0.975 = 1 - 4 (1 - 0.9) / 16).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build && xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so && say "library $(cat .prebuilt/COMMIT)"
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 180 python3 scripts/pytest_shards.py 16 "$OUT/tests_tactic_" tests/test_tactic_gpu.py 2>&1 | tail -25 | tee "$OUT/tests_tactic.log"
say tests
for p in 0.9 0.975; do
  timeout 60 python3 scripts/gpu_tactic_bench.py --iters 100 --contexts 131072,32768 --fractions 0.1 --tail 0 --p $p \
    --out "$OUT/bench_p$p.json" > "$OUT/bench_p$p.log" 2>&1
  say "p $p: $(grep -h '^| 0' "$OUT/bench_p$p.log" | tr '\n' ' ')"
done
cd "$OUT" && tar czf /tmp/final.tgz . && rm -rf "$OUT"/* && mv /tmp/final.tgz "$OUT/"
