#!/usr/bin/env bash
# Session 17, call 3: the Tactic step tests that failed under sm_86 in call 2, with launch
# errors that now name the kernel; then a compute_80 PTX build (JIT-compiled on the H200, so
# sm_80's own device code paths run) under sm_86's limits: the GPU forward pass against the CPU.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build /root/build80; xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
xz -dc .prebuilt/libtactic80.so.xz > /root/build80/libtactic.so
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so PYTHONUNBUFFERED=1
say "library $(cat .prebuilt/COMMIT)"
TACTIC_CUDA_EMULATE=sm_86 timeout 150 python3 -m pytest -q -x tests/test_tactic_gpu.py -k "mma_attention_matches_reference and 600" > "$OUT/mma86.log" 2>&1
say "sm_86 mma_attention rc $?: $(tail -1 $OUT/mma86.log)"; grep -E "^E " "$OUT/mma86.log" | head -5
export TACTIC_LIB=/root/build80/libtactic.so CUDA_CACHE_MAXSIZE=4294967296 TACTIC_CUDA_EMULATE=sm_86
timeout 200 python3 -m pytest -q -x tests/test_gpu_forward.py -k "random_weights_gpu_matches_cpu and llama and q4_k" > "$OUT/ptx_warm.log" 2>&1
say "PTX build, first test (JIT) rc $?: $(tail -1 $OUT/ptx_warm.log)"
timeout 200 python3 scripts/pytest_shards.py 16 "$OUT/ptx_" tests/test_gpu_forward.py -k "random_weights_gpu_matches_cpu or decode_attention_kernels_match_cpu or prefill_in_chunks or truncate_and_graph_replay" > "$OUT/ptx.sum" 2>&1
say "PTX build, forward rc $?: $(tail -1 $OUT/ptx.sum)"
grep -l -E "FAILED|Error" $OUT/ptx_*.log 2>/dev/null | head -2 | xargs -r tail -n 60 > "$OUT/fail_ptx.log"; rm -f $OUT/ptx_*.log
