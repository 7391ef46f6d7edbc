#!/usr/bin/env bash
# Session 11, lead: the fix of the context buffers' zeroing (88276d3), on the H200: Tactic's GPU
# tests in 16 shards (the run that failed in shard 10 before), the repro of that shard's first
# 34 tests in one process, and the backend tests of test_gpu_forward.py that run Tactic.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build && xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so && say "library $(cat .prebuilt/COMMIT)"
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so
mapfile -t ids < docs/results/s11/jobs/repro_ids.txt
( timeout 120 python3 -m pytest -q -p no:cacheprovider --tb=line "${ids[@]}" > "$OUT/repro_shard10_34.log" 2>&1 ) &
timeout 180 python3 scripts/pytest_shards.py 16 "$OUT/tests_tactic_" tests/test_tactic_gpu.py 2>&1 | tail -20 | tee "$OUT/tests_tactic.log"
wait
say "repro: $(tail -1 $OUT/repro_shard10_34.log)"
timeout 100 python3 scripts/pytest_shards.py 8 "$OUT/tests_fwd_" tests/test_gpu_forward.py -k "tactic or truncate" 2>&1 | tail -4 | tee "$OUT/tests_fwd.log"
say end
cd "$OUT" && tar czf /tmp/final.tgz . && rm -rf "$OUT"/* && mv /tmp/final.tgz "$OUT/"
