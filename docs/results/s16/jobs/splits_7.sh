#!/usr/bin/env bash
# Session 16, call 7: decode attention's split count (automatic: 33 on the 8B shape, one
# resident wave) against 32 and 64 forced, kernels 20 and 30, per layer against SDPA in a graph.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build; xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so PYTHONUNBUFFERED=1
echo "library $(cat .prebuilt/COMMIT)"
timeout 200 python3 scripts/gpu_bench.py --attention-only --no-eager --models llama3-8b-like --attn-kernels 20 30 \
  --splits 0 32 64 --contexts 16384 32768 65536 131072 --out "$OUT/splits.json" > "$OUT/splits.log" 2>&1
echo "rc $?"; grep -v Warning "$OUT/splits.log" | tail -14
