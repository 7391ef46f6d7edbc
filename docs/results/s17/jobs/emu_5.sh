#!/usr/bin/env bash
# Session 17, call 5: tests/test_gpu_emulated_arch.py itself (its sm_86 Tactic case and the card names).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build; xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so PYTHONUNBUFFERED=1
echo "library $(cat .prebuilt/COMMIT)"
timeout 170 python3 -m pytest -q -rs tests/test_gpu_emulated_arch.py -k "(sm_86 and tactic) or names" 2>&1 | tail -5 | tee "$OUT/emulated_arch.log"
