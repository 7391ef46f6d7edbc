#!/usr/bin/env bash
# Session 15, sitting 2: attn_kernel 32 (the new default: 20 below 32,768 keys, 30 from there).
# Its tests (every kept kernel against the float64 twin and the CPU, decode across the 32K
# bucket), the whole forward test file, the attention table, decode at 32K (32 against 20).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build /root/models
xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
say "library $(cat .prebuilt/COMMIT)"
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so PYTHONUNBUFFERED=1
( [ -f /root/models/l8b.gguf ] || python3 scripts/make_random_gguf.py --preset llama-3.1-8b --type q4_k_m --share-layers \
    -o /root/models/l8b.gguf > /tmp/gen8b.log 2>&1; echo "gen rc=$?" >> /tmp/gen8b.log ) &
timeout 60 python3 scripts/gpu_bench.py --attention-only --no-eager --models llama3-8b-like --attn-kernels 20 30 32 \
  --contexts 16384 32768 65536 131072 --out "$OUT/bench8b.json" > "$OUT/bench8b.log" 2>&1
say "bench rc $?"; grep attn "$OUT/bench8b.log"
timeout 150 python3 scripts/pytest_shards.py 16 /tmp/a_ tests/test_cuda.py tests/test_gpu_forward.py \
  -k "attention_mma or decode_attention_kernels_match_cpu or attn_kernel_option or switches_kernel" 2>&1 | tail -3 > "$OUT/tests_attn.log"
say "attention tests: $(tail -1 $OUT/tests_attn.log)"
grep -h -E "^FAILED|^E  " /tmp/a_*.log | head -20 >> "$OUT/tests_attn.log"
timeout 150 python3 scripts/pytest_shards.py 16 /tmp/f_ tests/test_gpu_forward.py \
  -k "not decode_attention_kernels_match_cpu and not switches_kernel" 2>&1 | tail -3 > "$OUT/tests_fwd.log"
say "forward tests: $(tail -1 $OUT/tests_fwd.log)"
grep -h -E "^FAILED|^E  " /tmp/f_*.log | head -20 >> "$OUT/tests_fwd.log"
grep -h "across the 32K" /tmp/a_*.log | head -2 >> "$OUT/tests_attn.log"
wait; say "$(tail -1 /tmp/gen8b.log 2>/dev/null)"
timeout 120 python3 scripts/gpu_decode_breakdown.py --model /root/models/l8b.gguf --depth 32768 --steps 48 --no-profile \
  --config k32: --config k20:attn_kernel=20 --config k32b: --config k20b:attn_kernel=20 \
  --out "$OUT/e2e32k.json" > "$OUT/e2e32k.log" 2>&1
say "e2e 32K rc $?"; grep "==" "$OUT/e2e32k.log"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/gpu.txt"
