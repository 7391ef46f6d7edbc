#!/usr/bin/env bash
# Session 15, sitting 1: option attn_early (decode attention's split kernel and wide merge call
# pdl_trigger() first) against the defaults: its tests (float64 twin over chained graph
# launches; decode against the CPU), the per-layer table against SDPA in a graph, the timer
# stamps, and decode at 32K on the 8B file.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build /root/models
xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
say "library $(cat .prebuilt/COMMIT)"
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader > "$OUT/gpu.txt"
( [ -f /root/models/l8b.gguf ] || python3 scripts/make_random_gguf.py --preset llama-3.1-8b --type q4_k_m --share-layers \
    -o /root/models/l8b.gguf > "$OUT/gen8b.log" 2>&1; echo "gen rc=$?" >> "$OUT/gen8b.log" ) &
timeout 60 python3 scripts/gpu_bench.py --attention-only --no-eager --models llama3-8b-like --attn-kernels 20 30 \
  --attn-early 0 1 --contexts 16384 32768 65536 131072 --out "$OUT/bench8b.json" > "$OUT/bench8b.log" 2>&1
say "bench 8B rc $?"; cat "$OUT/bench8b.log"
timeout 30 python3 scripts/gpu_bench.py --attention-only --no-eager --models gemma3-270m --attn-kernels 8 \
  --attn-early 0 1 --contexts 16384 32768 65536 131072 --out "$OUT/bench_gemma.json" > "$OUT/bench_gemma.log" 2>&1
say "bench gemma rc $?"; cat "$OUT/bench_gemma.log"
timeout 25 python3 scripts/attn_probe_times.py --kernels 20 30 --early 0 1 --contexts 32768 131072 \
  --out "$OUT/probe.json" > "$OUT/probe.log" 2>&1
say "probe rc $?"; cat "$OUT/probe.log"
timeout 120 python3 scripts/pytest_shards.py 16 "$OUT/a_" tests/test_cuda.py tests/test_gpu_forward.py \
  -k "early_trigger or attn_kernel_option" 2>&1 | tail -3 > "$OUT/tests_early.log"
say "early tests: $(tail -1 $OUT/tests_early.log)"
grep -l -E "FAILED|Error" $OUT/a_*.log 2>/dev/null | head -3 | xargs -r tail -40 > "$OUT/fail.log"
rm -f $OUT/a_*.log
wait; say "$(tail -1 $OUT/gen8b.log 2>/dev/null)"
timeout 100 python3 scripts/gpu_decode_breakdown.py --model /root/models/l8b.gguf --depth 32768 --steps 48 --no-profile \
  --config k20: --config k20e:attn_early=1 --config k30:attn_kernel=30 --config k30e:attn_kernel=30,attn_early=1 \
  --config k20b: --config k20eb:attn_early=1 --out "$OUT/e2e32k.json" > "$OUT/e2e32k.log" 2>&1
say "e2e 32K rc $?"; grep "==" "$OUT/e2e32k.log"
