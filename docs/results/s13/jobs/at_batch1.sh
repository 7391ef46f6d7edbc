#!/usr/bin/env bash
# at-s13 batch 1: float64-twin tests of attn_kernel 19/20 (fa-s10's cuDNN-like schedule,
# never run), 21-23 (kernel 8 with the tail claimed from a counter per head), 24-25 (8 and
# 10 with the grid's axes swapped); the graph-timed table against SDPA; per-block timer
# stamps (ramp, tail, merge) of 8, 10, 21, 23, 24; decode end to end at 32K; ncu per-SM
# active cycles if time is left.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; t0=$(date +%s)
say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
left() { echo $(( 192 - ($(date +%s) - t0) )); }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
say "tests"
timeout 45 python3 scripts/pytest_shards.py 14 "$OUT/tests_" tests/test_cuda.py tests/test_gpu_forward.py \
  -k "(attention_mma_matches or attention_mma_peaked or attention_mma_split_boundaries or decode_attention_kernels_match_cpu) and (k19 or k20 or k21 or k22 or k23 or k24 or k25)" \
  > "$OUT/tests.log" 2>&1; echo "rc=$?" >> "$OUT/tests.log"
cat "$OUT/tests.log"
say "bench"
timeout 45 python3 scripts/gpu_bench.py --attention-only --no-eager --models llama3-8b-like \
  --attn-kernels 8 10 15 19 20 21 22 23 24 25 \
  --contexts 16384 32768 65536 131072 --out "$OUT/bench.json" > "$OUT/bench.log" 2>&1; echo "rc=$?" >> "$OUT/bench.log"
cat "$OUT/bench.log"
timeout 15 python3 scripts/gpu_bench.py --attention-only --no-eager --models gemma3-270m --attn-kernels 8 21 22 23 24 25 \
  --contexts 16384 32768 65536 131072 --out "$OUT/bench_gemma.json" > "$OUT/bench_gemma.log" 2>&1; echo "rc=$?" >> "$OUT/bench_gemma.log"
cat "$OUT/bench_gemma.log"
say "probe"
timeout 20 python3 scripts/attn_probe_times.py --kernels 8 10 21 23 24 --contexts 32768 131072 \
  --out "$OUT/probe.json" > "$OUT/probe.log" 2>&1; echo "rc=$?" >> "$OUT/probe.log"
cat "$OUT/probe.log"
say "e2e"
t=$(left); [ $t -gt 40 ] && t=40
[ $t -gt 10 ] && timeout $t python3 scripts/gpu_decode_breakdown.py --model /root/models/l8b.gguf --depth 32768 --steps 32 \
  --no-profile --config k8:attn_kernel=8 --config k21:attn_kernel=21 --config k24:attn_kernel=24 \
  --out "$OUT/e2e.json" > "$OUT/e2e.log" 2>&1; echo "rc=$?" >> "$OUT/e2e.log"
grep -E "==|FAILED|rc=" "$OUT/e2e.log"
say "ncu"
M=gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__cycles_active.min,sm__cycles_active.avg,sm__cycles_active.max
t=$(left); [ $t -gt 8 ] && command -v ncu > /dev/null && timeout $t ncu --clock-control none -k regex:"attn_decode|fort_native" --metrics $M \
  python3 scripts/attn_probe.py 131072 8 21 24 19 > "$OUT/ncu_131072.txt" 2>&1
grep -E "attn_decode|fort_native|gpu__time|dram__thr|cycles_active" "$OUT/ncu_131072.txt" 2>/dev/null | grep -v PROF | head -40
say "end"
