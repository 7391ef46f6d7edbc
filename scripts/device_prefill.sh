#!/usr/bin/env bash
# One device call for the FlashAttention-2-style prefill attention (issue 10, prefill at
# depth), run from the copy of the tree that travels (cd into it first). In order, each
# step under `timeout`, logs to $OUT (few files: a call brings back only a handful):
#   the wheels; libtactic for sm_90 (.prebuilt/libtactic.so when one travels and loads
#   with a GPU seen, else built here with -j16); the 8B-shape Q4_K_M file started in the
#   background (setsid); the kernel tests (tests/test_cuda_prefill_attention.py: every
#   kernel against a float64 reference); the kernel benchmark at the 8B shape (scripts/
#   bench_prefill_attention.py, torch SDPA beside it; the FMA and WMMA kernels again in a
#   process of their own if the first one died); the parity tests (test_gpu_forward.py -k
#   "random or chunks"); pp512 end to end at 0 / 4K / 32K (scripts/gpu_e2e.py);
#   BASELINE=1: the same with the WMMA kernel (prefill_mma=1); DEEP=1: pp512 at 128K.
# DEADLINE (seconds from the start, default 205) bounds the whole; a step that would
# start too late is skipped.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
DEADLINE=${DEADLINE:-205}
t0=$(date +%s)
LOG="$OUT/progress.log"
say() { echo "[$(( $(date +%s) - t0 ))s] $*" | tee -a "$LOG"; }
left() { echo $(( DEADLINE - ($(date +%s) - t0) )); }
L8=/root/models/l8b.gguf
mkdir -p /root/models

WHL=$(for d in .whl ../.whl ../../.whl; do [ -d $d ] && echo $d && break; done)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $WHL/*.whl \
  >> "$LOG" 2>&1 || { say "wheels failed"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD
say "wheels in; $(nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.total --format=csv,noheader 2>&1);" \
  "$(python3 -c "import torch; print('torch', torch.__version__)" 2>&1 | tail -1)"

# (a GPU seen, and the options this tree's tests set known: a library with a stale object once lacked one)
lib_ok() { TACTIC_LIB=$1 timeout 30 python3 -c "from pytactic._native import lib; assert lib.tactic_cuda_device_count() > 0
assert lib.tactic_cuda_set_option(b'prefill_rows', 0) == 0 and lib.tactic_cuda_set_option(b'prefill_mma', 2) == 0" \
  >> "$LOG" 2>&1; }
if [ -f .prebuilt/libtactic.so ] && lib_ok "$PWD/.prebuilt/libtactic.so"; then
  export TACTIC_LIB=$PWD/.prebuilt/libtactic.so
  say "using the prebuilt library ($(cat .prebuilt/commit.txt 2>/dev/null))"
else
  say "building libtactic for sm_90"
  timeout 150 bash -c "cmake -S . -B /root/build -G Ninja -DTACTIC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 &&
    cmake --build /root/build -j16 --target tactic" > "$OUT/build.log" 2>&1 || { say "build failed"; tail -40 "$OUT/build.log"; exit 1; }
  export TACTIC_LIB=/root/build/libtactic.so
  say "built"
fi

if [ ! -f $L8 ]; then
  setsid nohup timeout 300 python3 scripts/make_random_gguf.py --preset llama-3.1-8b --type q4_k_m --share-layers \
    -o $L8 > /root/gen8b.log 2>&1 < /dev/null &
fi

timeout 100 python3 -m pytest -q -p no:cacheprovider --tb=short -rfs tests/test_cuda_prefill_attention.py \
  > "$OUT/test_prefill_kernels.log" 2>&1
say "kernel tests: $(tail -1 "$OUT/test_prefill_kernels.log")"
grep -E "^FAILED" "$OUT/test_prefill_kernels.log" | head -12

timeout 70 python3 scripts/bench_prefill_attention.py --depths 0,4096,32768,131072 --variants 2,2:128,1,0 \
  --out "$OUT/bench_prefill.json" > "$OUT/bench_prefill.log" 2>&1
rc=$?
cat "$OUT/bench_prefill.log"
if [ $rc != 0 ] || grep -q "failed at" "$OUT/bench_prefill.log"; then
  say "bench rc $rc: the older kernels again, in a process of their own"
  timeout 40 python3 scripts/bench_prefill_attention.py --depths 0,4096,32768,131072 --variants 1,0 --no-sdpa \
    2>&1 | tee -a "$LOG"
fi
say "bench done"

timeout 60 python3 -m pytest -q -p no:cacheprovider --tb=short -rfxs tests/test_gpu_forward.py -k "random or chunks" \
  > "$OUT/test_gpu_forward.log" 2>&1
say "parity tests: $(tail -1 "$OUT/test_gpu_forward.log")"
grep -E "^FAILED" "$OUT/test_gpu_forward.log" | head -8

while pgrep -f make_random_gguf > /dev/null && [ "$(left)" -gt 40 ]; do sleep 2; done
say "8B file: $(ls -la $L8 2>&1 | awk '{print $5}') $(tail -n 1 /root/gen8b.log)"
e2e() {  # name, depths, extra args
  local name=$1 depths=$2; shift 2
  timeout $(( $(left) - 3 )) python3 scripts/gpu_e2e.py --model $L8 --name llama-8B-random-Q4_K_M-pytactic-quantizer \
    --device cuda --depths "$depths" --prompt-from-empty 0 --reps 1 --out "$OUT/e2e_$name.json" "$@" 2>&1 \
    | grep -vE "^\s*$" >> "$OUT/e2e.log"
  say "e2e $name rc $?"
  grep -E "pytactic: depth" "$OUT/e2e.log" | tail -6
}
if [ -f $L8 ] && [ "$(left)" -gt 30 ]; then
  e2e fa2 0,4096,32768
  if [ "${BASELINE:-0}" = 1 ] && [ "$(left)" -gt 35 ]; then e2e wmma 0,4096,32768 --cuda-option prefill_mma=1; fi
  if [ "${DEEP:-0}" = 1 ] && [ "$(left)" -gt 50 ]; then e2e fa2_128k 131072 --n-gen 16; fi
fi
say "end"
