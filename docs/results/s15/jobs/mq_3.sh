#!/usr/bin/env bash
# Session 15, sitting 3: merge_q8 (decode attention's merge quantizes its output for wo).
# Its tests (same bytes as the separate kernel and as the unfused step; the forward file; the
# attention kernels against the CPU; the Tactic file), then decode tok/s with it on and off,
# interleaved: 8B shape at depth 0 and 32K, Gemma-3-270M shape (random) at 4K.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build /root/models
xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
say "library $(cat .prebuilt/COMMIT)"
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so PYTHONUNBUFFERED=1
( [ -f /root/models/l8b.gguf ] || python3 scripts/make_random_gguf.py --preset llama-3.1-8b --type q4_k_m --share-layers \
    -o /root/models/l8b.gguf > /tmp/gen8b.log 2>&1; echo "gen rc=$?" >> /tmp/gen8b.log
  [ -f /root/models/g270.gguf ] || python3 scripts/make_random_gguf.py --preset gemma-3-270m --type q4_k_m \
    -o /root/models/g270.gguf > /tmp/geng.log 2>&1; echo "gen rc=$?" >> /tmp/geng.log ) &
timeout 100 python3 scripts/pytest_shards.py 16 /tmp/f_ tests/test_gpu_forward.py 2>&1 | tail -2 > "$OUT/tests_fwd.log"
say "forward tests: $(tail -1 $OUT/tests_fwd.log)"
grep -h -E "^FAILED|^E  " /tmp/f_*.log | head -20 >> "$OUT/tests_fwd.log"
timeout 100 python3 scripts/pytest_shards.py 16 /tmp/a_ tests/test_cuda.py -k "attention_mma or attn_kernel_option" 2>&1 | tail -2 > "$OUT/tests_attn.log"
say "attention tests: $(tail -1 $OUT/tests_attn.log)"
grep -h -E "^FAILED|^E  " /tmp/a_*.log | head -20 >> "$OUT/tests_attn.log"
timeout 90 python3 scripts/pytest_shards.py 16 /tmp/t_ tests/test_tactic_gpu.py -k "backend or decode or gemma" 2>&1 | tail -2 > "$OUT/tests_tactic.log"
say "tactic tests: $(tail -1 $OUT/tests_tactic.log)"
grep -h -E "^FAILED|^E  " /tmp/t_*.log | head -20 >> "$OUT/tests_tactic.log"
wait; say "models: $(tail -1 /tmp/gen8b.log) $(tail -1 /tmp/geng.log)"
for d in 0 32768; do
  timeout 100 python3 scripts/gpu_decode_breakdown.py --model /root/models/l8b.gguf --depth $d --steps 64 --no-profile \
    --config on: --config off:merge_q8=0 --config on2: --config off2:merge_q8=0 --out "$OUT/e2e8b_$d.json" > "$OUT/e2e8b_$d.log" 2>&1
  say "8B depth $d rc $?"; grep "==" "$OUT/e2e8b_$d.log"
done
timeout 60 python3 scripts/gpu_decode_breakdown.py --model /root/models/g270.gguf --depth 4096 --steps 128 --no-profile \
  --config on: --config off:merge_q8=0 --config on2: --config off2:merge_q8=0 --out "$OUT/e2eg_4096.json" > "$OUT/e2eg_4096.log" 2>&1
say "gemma shape 4K rc $?"; grep "==" "$OUT/e2eg_4096.log"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/gpu.txt"
cd "$OUT" && tar czf /tmp/r.tgz . && rm -rf "$OUT"/* && mv /tmp/r.tgz "$OUT/"
