#!/usr/bin/env bash
# ts-s10 batch 2: the fused step's tests (tactic_select 9-13), a sweep at 128K / 10% (the L2
# prefetch, thread block clusters), the fastest fused variant's full table (128K / 64K / 32K,
# fractions 0.1, 0.025, 0.05, 0.25) against the default, and a diagnosis of batch 1's one
# failure (selection 4, head_dim 256). Most important first (the cap cuts the tail).
set -u
export PYTHONUNBUFFERED=1
nvidia-smi -L > "$OUT/gpu.txt" 2>&1
FUSED='fused_step or fused9 or fused10 or fused11 or fused12 or fused13 or (backend_group_budget and (9 or 10 or 11 or 12 or 13))'
timeout 55 python3 scripts/pytest_shards.py 16 "$OUT/tf" tests/test_tactic_gpu.py -k "$FUSED" 2>&1 | tee "$OUT/tests_fused.log"
timeout 50 python3 scripts/gpu_tactic_bench.py --iters 100 --no-mass-row --contexts 131072 --fractions 0.1 \
    --variants "select=9;select=12;select=13;select=12,prefetch=2048;attend=5" \
    --out "$OUT/sweep128k.json" 2>&1 | tee "$OUT/sweep128k.log"
BEST=$(python3 -c "
import json
rows = [r for r in json.load(open('$OUT/sweep128k.json'))['rows'] if r['select'] >= 9]
b = min(rows, key=lambda r: r['step_ms'])
print(f\"select={b['select']},prefetch={b.get('prefetch', 512)}\")" 2>/dev/null || echo "select=9")
echo "best fused variant at 128K / 10%: $BEST" | tee "$OUT/best.txt"
timeout 105 python3 scripts/gpu_tactic_bench.py --iters 100 --no-mass-row --contexts 131072,65536,32768 \
    --fractions 0.1,0.025,0.05,0.25 --variants "$BEST" --out "$OUT/table.json" 2>&1 | tee "$OUT/table.log"
timeout 25 python3 scripts/jobs/ts_diag_select4.py 2>&1 | tee "$OUT/diag_select4.log"
