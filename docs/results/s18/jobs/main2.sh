#!/usr/bin/env bash
# Session 18, call 3: main after the early rows' revert (83e3e99 + the SIMD targets + the AVX2
# element-wise ops), sm_90 build: Tactic's GPU tests, the GPU forward twins, the CUDA kernel
# twins, the per-layer step at 128K / 32K, and the CPU's element-wise and SIMD twins on this
# host's AVX-512.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build; xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so PYTHONUNBUFFERED=1
say "library $(cat .prebuilt/COMMIT)"
for s in tactic forward cuda; do
  case $s in
    tactic) sel=(tests/test_tactic_gpu.py) ;;
    forward) sel=(tests/test_gpu_forward.py tests/test_gpu_layers.py tests/test_device_select.py) ;;
    cuda) sel=(tests/test_cuda.py tests/test_cuda_matvec_q8.py tests/test_cuda_prefill_attention.py) ;;
  esac
  lim=120; [ $s = tactic ] && lim=200
  timeout $lim python3 scripts/pytest_shards.py 16 "$OUT/t_" "${sel[@]}" > "$OUT/$s.sum" 2>&1
  say "$s rc $?: $(tail -1 $OUT/$s.sum)"
  grep -l -E "FAILED|Error" $OUT/t_*.log 2>/dev/null | head -2 | xargs -r tail -n 60 >> "$OUT/fail.log"
  rm -f $OUT/t_*.log
done
timeout 60 python3 scripts/gpu_tactic_bench.py --iters 100 --no-mass-row --contexts 131072,32768 \
  --fractions 0.1,0.025 --out "$OUT/bench.json" > "$OUT/bench.log" 2>&1
say "bench rc $?"
timeout 60 python3 -m pytest -q -rs tests/test_cpu_ops.py tests/test_quant.py tests/test_attention_cpu.py \
  tests/test_tactic_kernels.py tests/test_decode_tiles.py > "$OUT/cpu_simd.log" 2>&1
say "cpu simd twins rc $?: $(tail -1 $OUT/cpu_simd.log)"
cat $OUT/*.sum > "$OUT/summary.log"; rm -f $OUT/*.sum
