#!/usr/bin/env bash
# Session 16, call 9: decode attention's split count balanced (as few splits as give each the
# same number of 128-key tiles at most: 33 -> 32 on the 8B shape) against the old count (33,
# forced with attn_splits, which decode now honours): per-layer table, decode at 32K, tests.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build /root/models; xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so PYTHONUNBUFFERED=1
say "library $(cat .prebuilt/COMMIT)"
( [ -f /root/models/l8b.gguf ] || python3 scripts/make_random_gguf.py --preset llama-3.1-8b --type q4_k_m --share-layers \
    -o /root/models/l8b.gguf > "$OUT/gen8b.log" 2>&1 ) &
timeout 60 python3 scripts/gpu_bench.py --attention-only --no-eager --models llama3-8b-like --attn-kernels 20 30 32 \
  --splits 0 33 --contexts 16384 32768 65536 131072 --out "$OUT/splits.json" > "$OUT/splits.log" 2>&1
say "bench rc $?"; grep -v Warning "$OUT/splits.log" | tail -5
wait; say "8B file $(ls -la /root/models/l8b.gguf | cut -c25-60)"
timeout 90 python3 scripts/gpu_decode_breakdown.py --model /root/models/l8b.gguf --depth 32768 --steps 32 --no-profile \
  --config new: --config old:attn_splits=33 --config newb: --config oldb:attn_splits=33 --out "$OUT/e2e32k.json" > "$OUT/e2e32k.log" 2>&1
say "decode 32K rc $?"; grep "==" "$OUT/e2e32k.log"
timeout 60 python3 scripts/pytest_shards.py 16 "$OUT/t_" tests/test_cuda.py tests/test_gpu_forward.py \
  -k "attention_mma_split_boundaries or attention_split_counts or decode_attention_kernels_match_cpu or switches_kernel or attn_kernel_option" \
  2>&1 | tail -1 > "$OUT/tests.log"
say "tests: $(cat $OUT/tests.log)"
grep -l -E "FAILED|Error" $OUT/t_*.log 2>/dev/null | head -3 | xargs -r tail -30 > "$OUT/fail.log"; rm -f $OUT/t_*.log
