#!/usr/bin/env bash
# at-s13 batch 2: where a launch's time goes (per-block timer stamps of 8, 19, 21, 24, 27);
# float64-twin tests and the graph-timed table against SDPA of 19/20 (fa-s10's cuDNN-like
# schedule, never run before), 24/25 (8 and 10 on a swapped grid), 26-28 (8 with L2
# prefetches 2/4/8 chunks ahead); 32 splits (cuDNN's count) against 33; a read-only
# ceiling (torch amax); decode end to end at 32K, k8 against the table's best.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; t0=$(date +%s)
say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
left() { echo $(( 192 - ($(date +%s) - t0) )); }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
say "probe"
timeout 25 python3 scripts/attn_probe_times.py --kernels 8 19 21 24 27 --contexts 32768 131072 \
  --out "$OUT/probe.json" > "$OUT/probe.log" 2>&1; echo "rc=$?" >> "$OUT/probe.log"
cat "$OUT/probe.log"
say "bench"
timeout 45 python3 scripts/gpu_bench.py --attention-only --no-eager --models llama3-8b-like \
  --attn-kernels 8 10 19 20 24 25 26 27 28 \
  --contexts 16384 32768 65536 131072 --out "$OUT/bench.json" > "$OUT/bench.log" 2>&1; echo "rc=$?" >> "$OUT/bench.log"
cat "$OUT/bench.log"
timeout 15 python3 scripts/gpu_bench.py --attention-only --no-eager --models gemma3-270m --attn-kernels 8 24 26 27 28 \
  --contexts 16384 32768 65536 131072 --out "$OUT/bench_gemma.json" > "$OUT/bench_gemma.log" 2>&1; echo "rc=$?" >> "$OUT/bench_gemma.log"
cat "$OUT/bench_gemma.log"
timeout 20 python3 scripts/gpu_bench.py --attention-only --no-eager --models llama3-8b-like --attn-kernels 8 24 27 \
  --splits 0 32 --contexts 32768 131072 --out "$OUT/bench_splits.json" > "$OUT/bench_splits.log" 2>&1; echo "rc=$?" >> "$OUT/bench_splits.log"
cat "$OUT/bench_splits.log"
timeout 10 python3 scripts/read_bw.py 16384 32768 65536 131072 > "$OUT/read_bw.log" 2>&1; echo "rc=$?" >> "$OUT/read_bw.log"
cat "$OUT/read_bw.log"
say "tests"
timeout 40 python3 scripts/pytest_shards.py 14 "$OUT/tests_" tests/test_cuda.py tests/test_gpu_forward.py \
  -k "(attention_mma_matches or attention_mma_peaked or attention_mma_split_boundaries or decode_attention_kernels_match_cpu) and (k19 or k20 or k21 or k24 or k25 or k26 or k27 or k28)" \
  > "$OUT/tests.log" 2>&1; echo "rc=$?" >> "$OUT/tests.log"
cat "$OUT/tests.log"
say "e2e"
best=$(python3 scripts/jobs/at_pick.py "$OUT/bench.json" 2>/dev/null || echo 27)
echo "e2e candidate: k$best"
t=$(left); [ $t -gt 45 ] && t=45
[ $t -gt 10 ] && timeout $t python3 scripts/gpu_decode_breakdown.py --model /root/models/l8b.gguf --depth 32768 --steps 32 \
  --no-profile --config k8:attn_kernel=8 --config k$best:attn_kernel=$best --config k8b:attn_kernel=8 \
  --out "$OUT/e2e.json" > "$OUT/e2e.log" 2>&1; echo "rc=$?" >> "$OUT/e2e.log"
grep -E "==|FAILED|rc=" "$OUT/e2e.log"
say "ncu"
M=gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__cycles_active.min,sm__cycles_active.avg,sm__cycles_active.max
t=$(left); [ $t -gt 8 ] && command -v ncu > /dev/null && timeout $t ncu --clock-control none -k regex:"attn_decode|fort_native" --metrics $M \
  python3 scripts/attn_probe.py 131072 8 $best > "$OUT/ncu_131072.txt" 2>&1
grep -E "attn_decode|fort_native|gpu__time|dram__thr|cycles_active" "$OUT/ncu_131072.txt" 2>/dev/null | grep -v PROF | head -40
say "end"
