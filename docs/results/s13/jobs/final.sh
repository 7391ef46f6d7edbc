#!/usr/bin/env bash
# Session 13, final sitting (main after the merges): decode attention (kernel 20 default,
# the pruned variant set) against the float64 twin and the CPU, the whole GPU Tactic test
# file, the backend's forward tests, the attention table, and decode at 32K on the 8B file
# with kernel 20 against kernel 8.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build /root/models
xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
say "library $(cat .prebuilt/COMMIT)"
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so PYTHONUNBUFFERED=1
( [ -f /root/models/l8b.gguf ] || python3 scripts/make_random_gguf.py --preset llama-3.1-8b --type q4_k_m --share-layers \
    -o /root/models/l8b.gguf > "$OUT/gen8b.log" 2>&1; echo "gen rc=$?" >> "$OUT/gen8b.log" ) &
timeout 90 python3 scripts/pytest_shards.py 16 "$OUT/a_" tests/test_cuda.py tests/test_gpu_forward.py \
  -k "attention_mma or decode_attention_kernels_match_cpu or attn_kernel_option" 2>&1 | tail -3 > "$OUT/tests_attn.log"
say "attention tests: $(tail -1 $OUT/tests_attn.log)"
timeout 170 python3 scripts/pytest_shards.py 16 "$OUT/t_" tests/test_tactic_gpu.py 2>&1 | tail -3 > "$OUT/tests_tactic.log"
say "tactic tests: $(tail -1 $OUT/tests_tactic.log)"
timeout 100 python3 scripts/pytest_shards.py 16 "$OUT/f_" tests/test_gpu_forward.py \
  -k "not decode_attention_kernels_match_cpu" 2>&1 | tail -3 > "$OUT/tests_fwd.log"
say "forward tests: $(tail -1 $OUT/tests_fwd.log)"
timeout 45 python3 scripts/gpu_bench.py --attention-only --no-eager --models llama3-8b-like --attn-kernels 8 20 30 \
  --contexts 16384 32768 65536 131072 > "$OUT/bench_attn.log" 2>&1
say "attention bench rc $?"
wait; say "$(tail -1 $OUT/gen8b.log 2>/dev/null)"
timeout 50 python3 scripts/gpu_decode_breakdown.py --model /root/models/l8b.gguf --depth 32768 --steps 32 --no-profile \
  --config k20: --config k8:attn_kernel=8 --out "$OUT/e2e32k.json" > "$OUT/e2e32k.log" 2>&1
say "e2e 32K rc $?"
cd "$OUT" && tar czf /tmp/r.tgz . && rm -rf "$OUT"/* && mv /tmp/r.tgz "$OUT/"
