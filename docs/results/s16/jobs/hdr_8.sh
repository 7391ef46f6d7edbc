#!/usr/bin/env bash
# Session 16, call 8: matvec_hdr (each lane loads one 4-byte word of its block's header; the block's
# lanes rebuild it by shuffles: 24 fewer registers for Q4_K) against v5: tests (v5's bits, the CPU's arithmetic,
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
timeout 90 python3 scripts/gpu_bench.py --q8-variants v5pg,v5xpg,v5r8xpg --cases Q4_K Q5_K --out "$OUT/mv.json" > "$OUT/mv.log" 2>&1
say "matvec bench rc $?"; grep -v Warning "$OUT/mv.log" | tail -13
timeout 120 python3 scripts/pytest_shards.py 8 "$OUT/t_" tests/test_cuda_matvec_q8.py -k "header or fused or wait" 2>&1 | tail -1 > "$OUT/tests.log"
timeout 120 python3 scripts/pytest_shards.py 8 "$OUT/f_" tests/test_gpu_forward.py -k "fusion_keeps" 2>&1 | tail -1 >> "$OUT/tests.log"
say "tests: $(cat $OUT/tests.log | tr '\n' ' ')"
grep -l -E "FAILED|Error" $OUT/t_*.log $OUT/f_*.log 2>/dev/null | head -3 | xargs -r tail -30 > "$OUT/fail.log"; rm -f $OUT/t_*.log $OUT/f_*.log
wait; say "8B file $(ls -la /root/models/l8b.gguf | cut -c25-60)"
timeout 120 python3 scripts/gpu_decode_breakdown.py --model /root/models/l8b.gguf --depth 16 --steps 64 --no-profile \
  --config v5: --config v5x:matvec_hdr=1 --config v5b: --config v5xb:matvec_hdr=1 --config v5c: --config v5xc:matvec_hdr=1 --out "$OUT/e2e16.json" > "$OUT/e2e16.log" 2>&1
say "decode A/B rc $?"; grep "==" "$OUT/e2e16.log"
# decode attention's split count (automatic: 33 on the 8B shape) against 32 and 64 forced
timeout 150 python3 scripts/gpu_bench.py --attention-only --no-eager --models llama3-8b-like --attn-kernels 20 30 \
  --splits 0 32 64 --contexts 16384 32768 65536 131072 --out "$OUT/splits.json" > "$OUT/splits.log" 2>&1
say "splits rc $?"; grep -v Warning "$OUT/splits.log" | tail -14
