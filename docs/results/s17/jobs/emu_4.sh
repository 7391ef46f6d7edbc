#!/usr/bin/env bash
# Session 17, call 4: after the three-warp stream kernels for 99 KB cards. Tactic's twins on
# the H200 itself, under sm_86's and sm_80's limits, then the compute_80 PTX build (sm_80's
# own device code, JIT-compiled) under sm_86's limits; the card-name checks.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build /root/build80; xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
xz -dc .prebuilt/libtactic80.so.xz > /root/build80/libtactic.so
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 CUDA_CACHE_MAXSIZE=4294967296
say "library $(cat .prebuilt/COMMIT)"
TAC=(tests/test_tactic_gpu.py -k "backend or mma_attention_matches_reference or attend_variants or step_matches_twin or mass_target_matches_twin")
run() {  # name lib card
  export TACTIC_LIB=$2; if [ $3 = none ]; then unset TACTIC_CUDA_EMULATE; else export TACTIC_CUDA_EMULATE=$3; fi
  timeout 200 python3 scripts/pytest_shards.py 16 "$OUT/$1_" "${TAC[@]}" > "$OUT/$1.sum" 2>&1
  say "$1 rc $?: $(tail -1 $OUT/$1.sum)"
  grep -l -E "FAILED|Error" $OUT/$1_*.log 2>/dev/null | head -2 | xargs -r tail -n 40 >> "$OUT/fail_$1.log"; rm -f $OUT/$1_*.log
}
run h200 /root/build/libtactic.so none
run sm86 /root/build/libtactic.so sm_86
run sm80 /root/build/libtactic.so sm_80
export TACTIC_LIB=/root/build80/libtactic.so TACTIC_CUDA_EMULATE=sm_86
timeout 200 python3 -m pytest -q -x tests/test_tactic_gpu.py -k "backend_tactic_all_tokens_equals_full" > "$OUT/ptx_warm.log" 2>&1
say "PTX build, first tests (JIT) rc $?: $(tail -1 $OUT/ptx_warm.log)"
run ptx86 /root/build80/libtactic.so sm_86
export TACTIC_LIB=/root/build/libtactic.so; unset TACTIC_CUDA_EMULATE
timeout 120 python3 -m pytest -q -rs tests/test_gpu_emulated_arch.py -k emulated_card_names > "$OUT/names.log" 2>&1
say "card names rc $?: $(tail -1 $OUT/names.log)"
cat $OUT/*.sum > "$OUT/summary.log"; rm -f $OUT/*.sum
