#!/usr/bin/env bash
# Session 11, lead: with exp-s11's library (24275e6: P = 1 keeps every token; option
# tactic_cand_div), on the H200: the P = 1 / fraction-1 tests (a random Gemma 3 shape beside
# the tiny Llama), then the real Gemma 3 270M: Tactic at P = 1 against full attention at 4K,
# 8K and 16K (should be ~0 now), then P = 0.9 with the candidate target 1 - (1 - P) / div for
# div 4 (as before), 8, 16, 32: KL paired with the CPU's; passkey and decode tok/s last.
# Run after gemma_gpu.sh's piece calls (STEP=run on the last piece assembles the file).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
G=/root/models/gemma-3-270m-q4_k_m.gguf
# (ran with tests/test_tactic_gpu.py of exp-s11 at e9e75f6 carried as tests/test_tactic_gpu_exp.py; the copy is gone,
# the tests are in main's tests/test_tactic_gpu.py)
cp docs/results/s11/jobs/test_tactic_gpu_exp.py tests/test_tactic_gpu_exp.py
timeout 60 python3 -m pytest -q -p no:cacheprovider -rs --tb=short tests/test_tactic_gpu_exp.py -k "p1_equals or cand_div or all_tokens" 2>&1 | tail -15 | tee "$OUT/tests_exp.log"
say tests
Q="python3 scripts/tactic_device_quality.py --model $G --device cuda --kl-steps 512 --kl-ref docs/results/kl_cpu_s10.npz"
run() {  # name, then the options
  local n=$1; shift
  timeout ${QTIME:-90} $Q "$@" --kl-out "$OUT/kl_gpu_$n.npz" --json "$OUT/kl_gpu_$n.json" > "$OUT/kl_gpu_$n.log" 2>&1
  say "$n: $(grep -h 'paired\|^| [0-9]' "$OUT/kl_gpu_$n.log" | cut -c1-60 | tr '\n' ' ')"
}
run p1 --ctx 4096 8192 16384 --p 1.0 --trials 0 --speed-steps 0
for d in 4 8 16 32; do run div$d --ctx 16384 32000 --trials 0 --speed-steps 0 --cuda-option tactic_cand_div=$d; done
for d in ${SPEED_DIVS:-4 16}; do run speed_div$d --ctx 16384 32000 --kl-steps 16 --trials 10 --speed-steps 256 --cuda-option tactic_cand_div=$d; done
say end
