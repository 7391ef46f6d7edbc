#!/usr/bin/env bash
# One device call of the GPU forward-pass work (issue 10), from the copy of this tree
# that travels (cd into it first). STEP says which:
#   1: start llama.cpp's build + the 8B Q4_K_M file in the background (setsid, so they
#      outlive this call while the machine stays warm), build libtactic, run the CUDA
#      tests and the random-weight parity tests
#      (and the matvec table: per type vs copy bandwidth);
#   2: the 8B-shape Q4_K_M side by side with llama-bench (scripts/gpu_e2e.py);
#   3: llama-bench alone at depth 131072;
#   4: the real Gemma 3 270M: parity tests, side by side at 4K and 32K (GEMMA_AB=1: then
#      pytactic again with matvec_q8=0, f32 activations, to price the 8-bit path's
#      extra quantize launches on this launch-bound model).
# (STEP=kernels: the full kernel table, decode attention vs torch SDPA included;
#  STEP=q8: one development call of the 8-bit-activation matvec: its tests, the parity
#  tests, the matvec table, and pytactic alone on make_random_gguf's 8B Q4_K_M file.)
# Every call may carry one piece of the zstd'ed Gemma file in models/ (pieces are
# appended to /root/models/gemma.zst; step 4 unpacks it: a whole file does not fit in
# one call's 64 MiB). Logs go to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
STEP=${STEP:-1}
t0=$(date +%s)
say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
# The wheels travel as .whl in the repository root (this tree may be a copy under .gpu/NAME).
WHL=${WHL:-$(for d in .whl ../.whl ../../.whl; do [ -d $d ] && echo $d && break; done)}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $WHL/*.whl || exit 1
export PYTHONPATH=/tmp/site
mkdir -p /root/models
for p in models/gemma.zst.part*; do [ -f "$p" ] && cat "$p" >> /root/models/gemma.zst && say "piece $p: $(stat -c %s /root/models/gemma.zst) bytes so far"; done
command -v zstd >/dev/null && say "zstd: $(command -v zstd)" || say "no zstd binary"

if [ "$STEP" = 1 ]; then
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.total --format=csv | tee "$OUT/nvidia_smi.txt"
  rm -rf /root/bench && cp -r bench /root/bench
  setsid nohup env BENCH=0 bash /root/bench/build_and_bench.sh > /root/llama_build.log 2>&1 < /dev/null &
fi

# libtactic for Hopper, in a folder that stays while the machine is warm (incremental).
cmake -S . -B /root/build -G Ninja -DTACTIC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 > "$OUT/build.log" 2>&1 &&
  cmake --build /root/build -j16 >> "$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
grep -iE "warning" "$OUT/build.log" | head -20
say "built"
export TACTIC_LIB=/root/build/libtactic.so
export TACTIC_TEST_MODEL=/root/models/gemma-3-270m-q4_k_m.gguf
if [ "$STEP" = q8 ] && [ ! -f /root/models/l8b.gguf ]; then  # the 8B file, written while the tests run
  setsid nohup timeout 300 python3 scripts/make_random_gguf.py --preset llama-3.1-8b --type q4_k_m --share-layers \
    -o /root/models/l8b.gguf > /root/gen8b.log 2>&1 < /dev/null &
fi

parity() {
  timeout ${PARITY_TIMEOUT:-300} python3 -m pytest -q -s -p no:cacheprovider --tb=short -rfs tests/test_gpu_forward.py \
    -k "${1:-random or chunks or truncate}" 2>&1 | tee "$OUT/parity_$STEP.log" | grep -E "steps with|passed|failed|Error|error|assert" | head -80
  say "parity done"
}

case "$STEP" in
final)
  # Parity with the tensor-core prefill attention, then pytactic alone on random files
  # written by make_random_gguf.py (pytactic's own quantizer; not llama.cpp's file).
  parity
  timeout 60 python3 scripts/make_random_gguf.py --preset llama-3.2-1b --type q4_k_m --share-layers -o /root/models/l1b.gguf > /dev/null 2>&1
  timeout 120 python3 scripts/gpu_e2e.py --model /root/models/l1b.gguf --name llama-1B-random-Q4_K_M --device cuda \
    --depths 0,32768 --n-gen 64 --prompt-from-empty 32768 --reps 1 --out "$OUT/e2e_1b_mma.json" 2>&1 | tail -5
  say "1B done"
  timeout 200 python3 scripts/make_random_gguf.py --preset llama-3.1-8b --type q4_k_m --share-layers -o /root/models/l8b.gguf > "$OUT/gen8b.log" 2>&1
  say "8B file: $(ls -la /root/models/l8b.gguf 2>&1)"
  [ -f /root/models/l8b.gguf ] && timeout ${E2E_TIMEOUT:-240} python3 scripts/gpu_e2e.py --model /root/models/l8b.gguf \
    --name llama-8B-random-Q4_K_M-pytactic-quantizer --device cuda --depths 0,4096,32768,131072 --prompt-from-empty 32768 \
    --reps 1 --out "$OUT/e2e_8b_mma.json" 2>&1 | tail -9
  say "8B done"
  ;;
q8)
  timeout 120 python3 -m pytest -q -p no:cacheprovider --tb=short -rf tests/test_cuda.py tests/test_cuda_matvec_q8.py \
    2>&1 | tee "$OUT/test_cuda.log" | tail -8
  say "kernel tests done"
  parity 2>&1 | tail -12
  grep -E "XPASS|XFAIL|FAILED" "$OUT/parity_$STEP.log" | head -8
  timeout 150 python3 scripts/gpu_bench.py --matvec-only --quick --out "$OUT/gpu_bench_matvec.json" 2>&1 \
    | tee "$OUT/bench_matvec.log" | tail -27
  say "matvec bench done"
  while pgrep -f make_random_gguf >/dev/null && [ $(( $(date +%s) - t0 )) -lt ${GEN_DEADLINE:-400} ]; do sleep 2; done
  say "8B file: $(ls -la /root/models/l8b.gguf 2>&1) $(tail -n 2 /root/gen8b.log)"
  [ -f /root/models/l8b.gguf ] && timeout ${E2E_TIMEOUT:-120} python3 scripts/gpu_e2e.py --model /root/models/l8b.gguf \
    --name llama-8B-random-Q4_K_M-pytactic-quantizer --device cuda --depths ${DEPTHS:-0,4096} --prompt-from-empty 0 \
    --reps 1 --out "$OUT/e2e_8b.json" 2>&1 | tee "$OUT/e2e_8b.log" | tail -6
  say "8B done"
  ;;
kernels)
  timeout 240 python3 scripts/gpu_bench.py --out "$OUT/gpu_bench.json" 2>&1 | tee "$OUT/bench.log" | tail -45
  ;;
1)
  timeout 200 python3 -m pytest -q -p no:cacheprovider --tb=short -rf tests/test_cuda.py tests/test_cuda_matvec_q8.py \
    2>&1 | tee "$OUT/test_cuda.log" | tail -5
  say "test_cuda done"
  parity
  timeout 150 python3 scripts/gpu_bench.py --matvec-only --quick --out "$OUT/gpu_bench_matvec.json" 2>&1 \
    | tee "$OUT/bench_matvec.log" | tail -26
  say "matvec bench done"
  ;;
2)
  # The 8B-shape Q4_K_M side by side (the file is llama.cpp's own quantization of
  # gen_random_gguf.py's F16 file: the same bytes on both sides).
  LB=/root/llamacpp/build/bin/llama-bench
  while [ ! -x $LB ] || [ ! -f /root/llamacpp/q4km.gguf ] || pgrep -f llama-quantize >/dev/null; do sleep 5; done
  say "llama.cpp side ready"
  timeout ${E2E_TIMEOUT:-450} python3 scripts/gpu_e2e.py --model /root/llamacpp/q4km.gguf --name llama-8B-random-Q4_K_M \
    --device cuda --llama-bench $LB --depths ${DEPTHS:-0,4096,32768} --prompt-from-empty 32768 --reps ${REPS:-1} \
    --out "$OUT/gpu_e2e_8b.json" 2>&1 | tee "$OUT/e2e_8b.log" | tail -14
  say "8B e2e done"
  ;;
3)
  # llama.cpp alone at 131072 (pytactic's prefill attention is too slow to fill that depth in one call).
  timeout 300 python3 scripts/gpu_e2e.py --model /root/llamacpp/q4km.gguf --name llama-8B-random-Q4_K_M \
    --llama-bench /root/llamacpp/build/bin/llama-bench --skip-pytactic --depths 131072 --prompt-from-empty 0 --reps 1 \
    --out "$OUT/gpu_e2e_8b_131k.json" 2>&1 | tee "$OUT/e2e_8b_131k.log" | tail -6
  say "131K llama.cpp done"
  ;;
4)
  G=$TACTIC_TEST_MODEL
  if command -v zstd >/dev/null; then zstd -d -f -q /root/models/gemma.zst -o $G
  else
    python3 -m pip install -q --no-index --no-deps --target /tmp/site zwhl/*.whl
    python3 -c "import zstandard,shutil; shutil.copyfileobj(zstandard.ZstdDecompressor().stream_reader(open('/root/models/gemma.zst','rb')), open('$G','wb'), 1<<24)"
  fi
  python3 - <<'PY'
import hashlib, os
h = hashlib.sha256(open(os.environ["TACTIC_TEST_MODEL"], "rb").read()).hexdigest()
print("gemma sha256", h[:8], "...", h[-5:], "OK" if h.startswith("a5fd3b62") and h.endswith("a6818") else "MISMATCH")
PY
  parity "gemma or tactic or refused"
  timeout 200 python3 scripts/gpu_e2e.py --model $G --name gemma-3-270m-Q4_K_M --device cuda \
    --llama-bench /root/llamacpp/build/bin/llama-bench --depths 4096,32768 --prompt-from-empty 0 --reps 1 \
    --out "$OUT/gpu_e2e_gemma.json" 2>&1 | tee "$OUT/e2e_gemma.log" | tail -6
  say "gemma e2e done"
  if [ "${GEMMA_AB:-0}" = 1 ]; then  # the same without 8-bit activations (extra quantize launches cost?)
    timeout 100 python3 scripts/gpu_e2e.py --model $G --name gemma-3-270m-Q4_K_M-f32act --device cuda \
      --cuda-option matvec_q8=0 --depths 4096,32768 --prompt-from-empty 0 --reps 1 \
      --out "$OUT/gpu_e2e_gemma_f32act.json" 2>&1 | tail -4
    say "gemma A/B done"
  fi
  ;;
esac
say "end"
