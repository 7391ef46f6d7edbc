#!/usr/bin/env bash
# at-s13 batch 3 (the last): 29-31 (kernels 20 / 19 with the tail's 128-key tiles claimed
# from a counter per head: batch 2's stamps showed 19's blocks ending 12 us apart at 128K):
# float64-twin tests and decode against the CPU; timer stamps; the graph-timed table
# against SDPA beside 8, 19, 20 (those first: a hang in the new code cannot cost them);
# decode end to end at 32K, k8 against the table's best.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; t0=$(date +%s)
say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
left() { echo $(( 142 - ($(date +%s) - t0) )); }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
say "bench 8 19 20"
timeout 22 python3 scripts/gpu_bench.py --attention-only --no-eager --attn-kernels 8 19 20 \
  --contexts 16384 32768 65536 131072 --out "$OUT/bench.json" > "$OUT/bench.log" 2>&1; echo "rc=$?" >> "$OUT/bench.log"
cat "$OUT/bench.log"
say "tests"
timeout 35 python3 scripts/pytest_shards.py 14 "$OUT/tests_" tests/test_cuda.py tests/test_gpu_forward.py \
  -k "(attention_mma_matches or attention_mma_peaked or attention_mma_split_boundaries or decode_attention_kernels_match_cpu) and (k29 or k30 or k31)" \
  > "$OUT/tests.log" 2>&1; echo "rc=$?" >> "$OUT/tests.log"
cat "$OUT/tests.log"
say "bench 29-31"
timeout 18 python3 scripts/gpu_bench.py --attention-only --no-eager --models llama3-8b-like --attn-kernels 8 29 30 31 \
  --contexts 16384 32768 65536 131072 --out "$OUT/bench_dyn.json" > "$OUT/bench_dyn.log" 2>&1; echo "rc=$?" >> "$OUT/bench_dyn.log"
cat "$OUT/bench_dyn.log"
say "probe"
timeout 14 python3 scripts/attn_probe_times.py --kernels 20 29 30 --contexts 32768 131072 \
  --out "$OUT/probe.json" > "$OUT/probe.log" 2>&1; echo "rc=$?" >> "$OUT/probe.log"
cat "$OUT/probe.log"
say "e2e"
best=$(python3 scripts/jobs/at_pick.py "$OUT/bench.json" "$OUT/bench_dyn.json" 2>/dev/null || echo 20)
echo "e2e candidate: k$best"
t=$(left); [ $t -gt 42 ] && t=42
[ $t -gt 10 ] && timeout $t python3 scripts/gpu_decode_breakdown.py --model /root/models/l8b.gguf --depth 32768 --steps 32 \
  --no-profile --config k8:attn_kernel=8 --config k$best:attn_kernel=$best --config k8b:attn_kernel=8 \
  --out "$OUT/e2e.json" > "$OUT/e2e.log" 2>&1; echo "rc=$?" >> "$OUT/e2e.log"
grep -E "==|FAILED|rc=" "$OUT/e2e.log"
say "end"
