#!/usr/bin/env bash
# Session 15, sitting 5: Tactic end to end on main's library (8B-shape Q4_K_M, 131,072 tokens,
# forced fraction 10% of the KV group's cache).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build /root/models
xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
say "library $(cat .prebuilt/COMMIT)"
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so PYTHONUNBUFFERED=1
[ -f /root/models/l8b.gguf ] || python3 scripts/make_random_gguf.py --preset llama-3.1-8b --type q4_k_m --share-layers \
    -o /root/models/l8b.gguf > /tmp/gen8b.log 2>&1
say "model rc $?"
timeout 200 python3 scripts/gpu_decode_breakdown.py --model /root/models/l8b.gguf --depth 131072 --steps 32 --no-profile \
  --tactic-fraction 0.1 --config tactic10: --out "$OUT/e2e8b_128k_tactic.json" > "$OUT/e2e8b_128k_tactic.log" 2>&1
say "rc $?"; grep -E "==|FAILED" "$OUT/e2e8b_128k_tactic.log"
