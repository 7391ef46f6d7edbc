#!/usr/bin/env bash
# ts-s10 batch 1: the fused step (tactic_select 9: selection 4 inside the attention kernel;
# 10: the scores too) against the default; aligned pieces (attend 5) and selection 5 for
# reference; all Tactic GPU tests; ncu of the step's kernels at 128K / 10%.
set -u
export PYTHONUNBUFFERED=1
nvidia-smi -L > "$OUT/gpu.txt" 2>&1
timeout 60 python3 scripts/pytest_shards.py 16 "$OUT/tf" tests/test_tactic_gpu.py -k "fused9 or fused10 or (backend_group_budget and (9 or 10))" 2>&1 | tee "$OUT/tests_fused.log"
timeout 75 python3 scripts/gpu_tactic_bench.py --iters 100 --no-mass-row --contexts 131072,32768 --fractions 0.1 \
    --variants "select=9;select=10;attend=5;select=5" --out "$OUT/bench.json" 2>&1 | tee "$OUT/bench.log"
timeout 70 python3 scripts/pytest_shards.py 16 "$OUT/t" tests/test_tactic_gpu.py -k "not fused9 and not fused10" 2>&1 | tee "$OUT/tests_rest.log"
if command -v ncu >/dev/null; then
    timeout 40 ncu --clock-control none -k regex:"cscore|cut3|attend_stream" --section SpeedOfLight \
        python3 scripts/gpu_tactic_profile_case.py --n 131072 --settings "tactic_select=4;tactic_select=9" > "$OUT/ncu.txt" 2>&1
    echo "ncu rc $?" >> "$OUT/ncu.txt"
fi
