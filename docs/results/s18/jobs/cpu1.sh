#!/usr/bin/env bash
# Session 18, call 2: the CPU's AVX-512 kernels before (83e3e99: -mavx512f ... for each SIMD file)
# and after (9e6e288: the target per function, simd_target.h) on this host's Xeon (AVX-512
# VNNI), interleaved: bench_matmul (Gemma 3 270M's shapes, one thread) and bench_attention_kernels.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build; for v in old new; do xz -dc .prebuilt/cpu_$v.so.xz > /root/build/cpu_$v.so; done
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
lscpu | grep -m1 "Model name" > "$OUT/matmul.log"
for r in 1 2 3; do
  for v in old new; do
    echo "== round $r $v" >> "$OUT/matmul.log"
    TACTIC_LIB=/root/build/cpu_$v.so taskset -c 2 timeout 60 python3 scripts/bench_matmul.py --threads 1 --quick >> "$OUT/matmul.log" 2>&1
    echo "== round $r $v" >> "$OUT/attn.log"
    TACTIC_LIB=/root/build/cpu_$v.so timeout 60 python3 scripts/bench_attention_kernels.py --ctx 16384 --threads 2 >> "$OUT/attn.log" 2>&1
  done
done
grep -E "== round|decode:|prefill \(" "$OUT/matmul.log" > "$OUT/matmul_summary.log"
