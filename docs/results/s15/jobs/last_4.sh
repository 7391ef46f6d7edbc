#!/usr/bin/env bash
# Session 15, sitting 4: main's defaults end to end. Decode on the 8B-shape Q4_K_M file at depth
# 16 with merge_q8 on / off (interleaved), and at 131,072 tokens with attn_kernel 32 (30 there)
# against 20.
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
timeout 60 python3 scripts/gpu_decode_breakdown.py --model /root/models/l8b.gguf --depth 16 --steps 64 --no-profile \
  --config on: --config off:merge_q8=0 --config on2: --config off2:merge_q8=0 --out "$OUT/e2e8b_16.json" > "$OUT/e2e8b_16.log" 2>&1
say "8B depth 16 rc $?"; grep -E "==|FAILED" "$OUT/e2e8b_16.log"
timeout 300 python3 scripts/gpu_decode_breakdown.py --model /root/models/l8b.gguf --depth 131072 --steps 32 --no-profile \
  --config k32: --config k20:attn_kernel=20 --out "$OUT/e2e8b_128k.json" > "$OUT/e2e8b_128k.log" 2>&1
say "8B depth 131072 rc $?"; grep -E "==|FAILED" "$OUT/e2e8b_128k.log"
