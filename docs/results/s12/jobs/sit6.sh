#!/usr/bin/env bash
# Session 12, sitting 6 (main with the new fused cut and scores 5): the per-layer table, the GPU
# Tactic tests, the backend's Tactic tests, and end to end at 128K on the 8B-shape file
# (the fused step now engages there).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build /root/models
xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
say "library $(cat .prebuilt/COMMIT)"
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so
( [ -f /root/models/l8b.gguf ] || python3 scripts/make_random_gguf.py --preset llama-3.1-8b --type q4_k_m --share-layers \
    -o /root/models/l8b.gguf > "$OUT/gen8b.log" 2>&1; echo "gen rc=$? at $(( $(date +%s) - t0 ))s" >> "$OUT/gen8b.log" ) &
timeout 150 python3 scripts/gpu_tactic_bench.py --iters 100 --no-mass-row --contexts 131072,65536,32768 \
  --fractions 0.1,0.025,0.05,0.25,0.143,0.194 --out "$OUT/bench.json" > "$OUT/bench.log" 2>&1
say "bench rc $?"
timeout 200 python3 scripts/pytest_shards.py 16 "$OUT/t_" tests/test_tactic_gpu.py 2>&1 | tail -20 | tee "$OUT/tests.log"
say "tests done"
timeout 100 python3 scripts/pytest_shards.py 8 "$OUT/f_" tests/test_gpu_forward.py -k "tactic or truncate" 2>&1 | tail -4 | tee "$OUT/tests_fwd.log"
say "fwd tests done"
wait; say "$(tail -1 $OUT/gen8b.log)"
timeout 280 python3 scripts/gpu_decode_breakdown.py --model /root/models/l8b.gguf --depth 131072 --steps 24 \
  --tactic-fraction 0.1 --no-profile --config new: --config before:tactic_select=4,tactic_score=4 \
  --out "$OUT/e2e128k.json" > "$OUT/e2e128k.log" 2>&1
say "e2e rc $?"
cd "$OUT" && tar czf /tmp/r.tgz . && rm -rf "$OUT"/* && mv /tmp/r.tgz "$OUT/"
