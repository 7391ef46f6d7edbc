#!/usr/bin/env bash
# Session 18, call 4: the CPU element-wise ops after the review's mend (SIMD versions return
# the count done, ops.cpp's scalar loop finishes): the CPU twins on this host's AVX-512.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build; xz -dc .prebuilt/cpu_new.so.xz > /root/build/cpu_new.so
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/cpu_new.so PYTHONUNBUFFERED=1
echo "library $(cat .prebuilt/COMMIT)" > "$OUT/cpu_simd.log"
timeout 120 python3 -m pytest -q -rs tests/test_cpu_ops.py tests/test_quant.py tests/test_attention_cpu.py \
  tests/test_tactic_kernels.py tests/test_decode_tiles.py >> "$OUT/cpu_simd.log" 2>&1
echo "rc $?" >> "$OUT/cpu_simd.log"
