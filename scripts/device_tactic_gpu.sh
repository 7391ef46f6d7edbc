#!/usr/bin/env bash
# One device call of the Tactic-on-the-GPU work (issue 11), from the copy of this tree
# that travels (cd into it first). STEP says which:
#   test (default): the GPU tests of the Tactic step and of attention="tactic" on CUDA,
#     then the per-layer benchmark (scripts/gpu_tactic_bench.py) and, while time allows
#     (E2E_1B=1), a 1B random-weight Q4_K_M decode at 32K, full vs Tactic at 10%;
#   e2e: the 8B-shape Q4_K_M rows with attention "tactic" at the forced fractions, side
#     by side with llama-bench when LB names it (docs/results/gpu_e2e.json's shape).
# From the repo root of a travelled copy of main: WHL=.whl; from .gpu/<name>: the default.
# The lead's sitting (llama.cpp built and its 8B Q4_K_M made by device_gpu_forward.sh STEP=1):
#   STEP=e2e LB=/root/llamacpp/build/bin/llama-bench FILE=/root/llamacpp/q4km.gguf \
#     DEPTHS=32768,131072 FRACTIONS=0.1 bash scripts/device_tactic_gpu.sh
# (each fraction refills the cache: about 3 minutes at 128K; more fractions in later calls,
# rows accumulate in $OUT/gpu_e2e.json, a copy of docs/results/gpu_e2e.json).
# The library: lib/libtactic.so when it travelled (built with -DCMAKE_CUDA_ARCHITECTURES=90)
# and loads a GPU there, else built into /root/build. Logs go to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
STEP=${STEP:-test}
WHL=${WHL:-../../.whl}
t0=$(date +%s)
say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $WHL/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
if [ -f lib/libtactic.so ] && TACTIC_LIB=$PWD/lib/libtactic.so python3 -c \
    "from pytactic._native import lib; assert lib.tactic_cuda_device_count() > 0" 2>/dev/null; then
  export TACTIC_LIB=$PWD/lib/libtactic.so
  say "using the library that travelled"
else
  cmake -S . -B /root/build -G Ninja -DTACTIC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 > "$OUT/build.log" 2>&1 &&
    cmake --build /root/build -j16 --target tactic >> "$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
  export TACTIC_LIB=/root/build/libtactic.so
  say "built"
fi

case "$STEP" in
test)
  timeout ${TEST_TIMEOUT:-200} python3 -m pytest -q -p no:cacheprovider --tb=short -rfs tests/test_tactic_gpu.py \
    2>&1 | tee "$OUT/test_tactic_gpu.log" | tail -25
  say "tests done"
  timeout ${BENCH_TIMEOUT:-200} python3 scripts/gpu_tactic_bench.py --out "$OUT/gpu_tactic_bench.json" 2>&1 |
    tee "$OUT/gpu_tactic_bench.log"
  say "bench done"
  if [ "${E2E_1B:-0}" = 1 ]; then
    timeout 90 python3 scripts/make_random_gguf.py --preset llama-3.2-1b --type q4_k_m --share-layers \
      -o /root/l1b.gguf > /dev/null 2>&1 && say "1B file made"
    for spec in "full" "tactic --model-kwarg tactic_force_fraction=0.1"; do
      timeout 120 python3 scripts/gpu_e2e.py --model /root/l1b.gguf --name llama-1B-random-Q4_K_M --device cuda \
        --depths 32768 --n-gen 128 --prompt-from-empty 0 --reps 1 --attention $spec \
        --rows-to "$OUT/e2e_1b.json" 2>&1 | tail -4
    done
    say "1B e2e done"
  fi
  ;;
e2e)
  # The 8B-shape Q4_K_M file (pytactic's quantizer), or FILE=... (e.g. llama.cpp's own q4km.gguf).
  FILE=${FILE:-/root/models/l8b.gguf}
  [ -f "$FILE" ] || timeout 240 python3 scripts/make_random_gguf.py --preset llama-3.1-8b --type q4_k_m --share-layers \
    -o "$FILE" > "$OUT/gen8b.log" 2>&1
  DEPTHS=${DEPTHS:-32768,131072}
  LCJSON=()
  if [ -n "${LB:-}" ]; then  # llama.cpp's full-attention decode at the same depths, once for every row
    $LB -m "$FILE" -ngl 99 -fa 1 -p 0 -n 128 -d $DEPTHS -r ${REPS:-1} -o json > "$OUT/llamacpp_tg.json" 2> "$OUT/llamacpp_tg.err"
    say "llama-bench done"
    LCJSON=(--llamacpp-json "$OUT/llamacpp_tg.json")
  fi
  [ -f "$OUT/gpu_e2e.json" ] || cp docs/results/gpu_e2e.json "$OUT/gpu_e2e.json"
  for f in ${FRACTIONS:-0.1}; do  # each fraction refills the cache (128K: minutes)
    timeout ${E2E_TIMEOUT:-300} python3 scripts/gpu_e2e.py --model "$FILE" --name llama-8B-random-Q4_K_M --device cuda \
      --depths $DEPTHS --prompt-from-empty 0 --reps ${REPS:-1} "${LCJSON[@]}" \
      --attention tactic --model-kwarg tactic_force_fraction=$f --rows-to "$OUT/gpu_e2e.json" 2>&1 | tail -6
    say "fraction $f done"
  done
  ;;
esac
