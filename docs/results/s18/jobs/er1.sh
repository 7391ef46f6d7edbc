#!/usr/bin/env bash
# Session 18, call 1. (1) Early rows (tactic_stream 24): Tactic's GPU tests (every twin of the
# fused step with 24 too) and the per-layer step against 8, interleaved. (2) Main's changes not
# yet run on a GPU: 83e3e99 (decode attention's dispatch: the forward pass against the CPU, also
# under sm_86's caps) and 9e6e288 (the CPU's SIMD kernels compiled per function: their twins on
# this host's AVX-512).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build; xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so PYTHONUNBUFFERED=1
say "library $(cat .prebuilt/COMMIT); cpu: $(lscpu | grep -m1 'Model name' | cut -c1-60); avx512_vnni: $(grep -c -m1 avx512_vnni /proc/cpuinfo)"
timeout 240 python3 scripts/pytest_shards.py 16 "$OUT/t_" tests/test_tactic_gpu.py > "$OUT/tac.sum" 2>&1
say "tactic gpu tests rc $?: $(tail -1 $OUT/tac.sum)"
grep -l -E "FAILED|Error" $OUT/t_*.log 2>/dev/null | head -2 | xargs -r tail -n 60 > "$OUT/fail_tac.log"
rm -f $OUT/t_*.log
timeout 200 python3 scripts/gpu_tactic_bench.py --iters 100 --no-mass-row --contexts 131072,32768 \
  --fractions 0.1,0.025 --variants "stream=24;stream=24,early=8;stream=24,early=2;stream=8;stream=24" \
  --out "$OUT/bench.json" > "$OUT/bench.log" 2>&1
say "bench rc $?"
FWD=(tests/test_gpu_forward.py -k "random_weights_gpu_matches_cpu or decode_attention_kernels_match_cpu")
for card in none sm_86; do
  if [ $card = none ]; then unset TACTIC_CUDA_EMULATE; else export TACTIC_CUDA_EMULATE=$card; fi
  timeout 120 python3 scripts/pytest_shards.py 16 "$OUT/f_" "${FWD[@]}" > "$OUT/fwd_$card.sum" 2>&1
  say "forward ($card) rc $?: $(tail -1 $OUT/fwd_$card.sum)"
  grep -l -E "FAILED|Error" $OUT/f_*.log 2>/dev/null | head -2 | xargs -r tail -n 60 >> "$OUT/fail_fwd.log"
  rm -f $OUT/f_*.log
done
unset TACTIC_CUDA_EMULATE
timeout 120 python3 -m pytest -q -rs tests/test_quant.py tests/test_attention_cpu.py tests/test_tactic_kernels.py \
  tests/test_decode_tiles.py > "$OUT/cpu_simd.log" 2>&1
say "cpu simd twins rc $?: $(tail -1 $OUT/cpu_simd.log)"
cat $OUT/*.sum > "$OUT/summary.log"; rm -f $OUT/*.sum
cuobjdump -res-usage /root/build/libtactic.so 2>/dev/null | grep -A1 "attend_stream_kernelILi128ELi8ELb1ELi8ELb1ELb0ELi[13]E" > "$OUT/regs.log"
