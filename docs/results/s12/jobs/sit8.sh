#!/usr/bin/env bash
# Session 12, sitting 8: the partials' merge factored (cut3_cut and the fused cut): the whole GPU Tactic test file, the per-layer 10% row.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build && xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so
echo "library $(cat .prebuilt/COMMIT)"
timeout 200 python3 scripts/pytest_shards.py 16 "$OUT/t_" tests/test_tactic_gpu.py 2>&1 | tail -3 | tee "$OUT/tests.log"
timeout 60 python3 scripts/gpu_tactic_bench.py --iters 100 --no-mass-row --contexts 131072,32768 --fractions 0.1 > "$OUT/bench.log" 2>&1
grep "^| 0" "$OUT/bench.log"
cd "$OUT" && tar czf /tmp/r.tgz . && rm -rf "$OUT"/* && mv /tmp/r.tgz "$OUT/"
