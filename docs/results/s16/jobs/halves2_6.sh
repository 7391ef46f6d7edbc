#!/usr/bin/env bash
# Session 16, call 6: v5h with whole-sector loads (lanes 2i, 2i+1 read the two halves of one
# row's run, then swap by a shuffle) against v5: tests (v5's bits, the CPU's arithmetic,
# the decode-fusion logits), the matvec table (graph + PDL), decode at depth 16 on the 8B file.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build /root/models; xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so PYTHONUNBUFFERED=1
say "library $(cat .prebuilt/COMMIT)"
( [ -f /root/models/l8b.gguf ] || python3 scripts/make_random_gguf.py --preset llama-3.1-8b --type q4_k_m --share-layers \
    -o /root/models/l8b.gguf > "$OUT/gen8b.log" 2>&1 ) &
timeout 90 python3 scripts/gpu_bench.py --q8-variants v5pg,v5hpg,v5h2pg --cases Q4_K Q5_K --out "$OUT/mv.json" > "$OUT/mv.log" 2>&1
say "matvec bench rc $?"; grep -v Warning "$OUT/mv.log" | tail -13
timeout 120 python3 scripts/pytest_shards.py 8 "$OUT/t_" tests/test_cuda_matvec_q8.py -k "halves or fused or wait" 2>&1 | tail -1 > "$OUT/tests.log"
timeout 120 python3 scripts/pytest_shards.py 8 "$OUT/f_" tests/test_gpu_forward.py -k "fusion_keeps" 2>&1 | tail -1 >> "$OUT/tests.log"
say "tests: $(cat $OUT/tests.log | tr '\n' ' ')"
grep -l -E "FAILED|Error" $OUT/t_*.log $OUT/f_*.log 2>/dev/null | head -3 | xargs -r tail -30 > "$OUT/fail.log"; rm -f $OUT/t_*.log $OUT/f_*.log
wait; say "8B file $(ls -la /root/models/l8b.gguf | cut -c25-60)"
timeout 120 python3 scripts/gpu_decode_breakdown.py --model /root/models/l8b.gguf --depth 16 --steps 64 --no-profile \
  --config v5: --config v5h:matvec_halves=1 --config v5h2:matvec_halves=2 --config v5b: --config v5hb:matvec_halves=1 \
  --config v5h2b:matvec_halves=2 --out "$OUT/e2e16.json" > "$OUT/e2e16.log" 2>&1
say "decode A/B rc $?"; grep "==" "$OUT/e2e16.log"
