#!/usr/bin/env bash
# at-s13 batch 1: float64-twin tests of attn_kernel 12-15 (dynamic chunk claims) beside 8,
# the graph-timed table against SDPA, forced split counts, decode end to end at 32K.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; t0=$(date +%s)
say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
left() { echo $(( 195 - ($(date +%s) - t0) )); }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
git log -1 --format='tree %H' 2>/dev/null || true
say "tests"
timeout 45 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py \
  -k "attention_mma and (k8 or k12 or k13 or k14 or k15)" > "$OUT/tests_mma.log" 2>&1; echo "rc=$?" >> "$OUT/tests_mma.log"
tail -5 "$OUT/tests_mma.log"
say "bench"
timeout 70 python3 scripts/gpu_bench.py --attention-only --no-eager --attn-kernels 8 12 13 14 15 \
  --contexts 16384 32768 65536 131072 --out "$OUT/bench.json" > "$OUT/bench.log" 2>&1; echo "rc=$?" >> "$OUT/bench.log"
cat "$OUT/bench.log"
say "e2e"
t=$(left); [ $t -gt 60 ] && t=40
[ $t -gt 10 ] && timeout $t python3 scripts/gpu_decode_breakdown.py --model /root/models/l8b.gguf --depth 32768 --steps 32 \
  --no-profile --config k8:attn_kernel=8 --config k12:attn_kernel=12 --config k14:attn_kernel=14 \
  --out "$OUT/e2e.json" > "$OUT/e2e.log" 2>&1; echo "rc=$?" >> "$OUT/e2e.log"
grep -E "==|FAILED|rc=" "$OUT/e2e.log"
say "decode vs cpu"
t=$(left); [ $t -gt 25 ] && t=25
[ $t -gt 5 ] && timeout $t python3 -m pytest -q -p no:cacheprovider tests/test_gpu_forward.py \
  -k "decode_attention_kernels_match_cpu and (k8 or k12 or k14)" > "$OUT/tests_fwd.log" 2>&1; echo "rc=$?" >> "$OUT/tests_fwd.log"
tail -5 "$OUT/tests_fwd.log"
say "splits"
t=$(left); [ $t -gt 5 ] && timeout $t python3 scripts/gpu_bench.py --attention-only --no-eager --attn-kernels 8 12 \
  --splits 0 66 132 --models llama3-8b-like --contexts 32768 131072 > "$OUT/bench_splits.log" 2>&1
cat "$OUT/bench_splits.log"
say "end"
