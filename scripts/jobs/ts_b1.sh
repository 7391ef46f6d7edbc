#!/usr/bin/env bash
# ts-s10 batch 1: the fused step (tactic_select 9: selection 4 inside the attention kernel; 10:
# the scores too; 11, 12: those with the chosen rows prefetched into L2, tactic_prefetch rows a
# block) against the default (4) and aligned pieces (attend 5); all Tactic GPU tests; ncu of
# the step's kernels at 128K / 10%. Most important first (the cap cuts the tail).
set -u
export PYTHONUNBUFFERED=1
nvidia-smi -L > "$OUT/gpu.txt" 2>&1
FUSED='fused_step or fused9 or fused10 or fused11 or fused12 or (backend_group_budget and (9 or 10 or 11 or 12))'
timeout 50 python3 scripts/pytest_shards.py 16 "$OUT/tf" tests/test_tactic_gpu.py -k "$FUSED" 2>&1 | tee "$OUT/tests_fused.log"
timeout 65 python3 scripts/gpu_tactic_bench.py --iters 100 --no-mass-row --contexts 131072 --fractions 0.1 \
    --variants "select=9;select=10;select=11;select=12;select=12,prefetch=256;select=12,prefetch=2048;attend=5" \
    --out "$OUT/bench128k.json" 2>&1 | tee "$OUT/bench128k.log"
timeout 65 python3 scripts/pytest_shards.py 16 "$OUT/t" tests/test_tactic_gpu.py -k "not ($FUSED)" 2>&1 | tee "$OUT/tests_rest.log"
timeout 25 python3 scripts/gpu_tactic_bench.py --iters 100 --no-mass-row --contexts 32768 --fractions 0.1 \
    --variants "select=10;select=12" --out "$OUT/bench32k.json" 2>&1 | tee "$OUT/bench32k.log"
if command -v ncu >/dev/null; then
    timeout 30 ncu --clock-control none -k regex:"cscore|cut3|attend_stream" --section SpeedOfLight \
        python3 scripts/gpu_tactic_profile_case.py --n 131072 --settings "tactic_select=4;tactic_select=12" > "$OUT/ncu.txt" 2>&1
    echo "ncu rc $?" >> "$OUT/ncu.txt"
fi
