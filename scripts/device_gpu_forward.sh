#!/usr/bin/env bash
# One device call of the GPU forward-pass work (issue 10), from the copy of this tree
# that travels (cd into it first). STEP says which:
#   1: start llama.cpp's build + the 8B Q4_K_M file in the background (setsid, so they
#      outlive this call while the machine stays warm), build libtactic, run the CUDA
#      tests and the random-weight parity tests, time a small model end to end;
#   2: kernel tables (scripts/gpu_bench.py: matvec per type vs copy bandwidth, decode
#      attention vs torch SDPA in a CUDA graph);
#   3: rebuild (incremental) and rerun the parity tests;
#   4: the real Gemma 3 270M tests and the side-by-side benchmark (scripts/gpu_e2e.py).
# Every call may carry one piece of the zstd'ed Gemma file in models/ (pieces are
# appended to /root/models/gemma.zst; step 4 unpacks it: a whole file does not fit in
# one call's 64 MiB). Logs go to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
STEP=${STEP:-1}
t0=$(date +%s)
say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site ../.whl/*.whl || exit 1
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

parity() {
  timeout ${PARITY_TIMEOUT:-300} python3 -m pytest -q -s -p no:cacheprovider --tb=short -rfs tests/test_gpu_forward.py \
    -k "${1:-random or chunks or truncate}" 2>&1 | tee "$OUT/parity_$STEP.log" | grep -E "steps with|passed|failed|Error|error|assert" | head -80
  say "parity done"
}

case "$STEP" in
1)
  timeout 200 python3 -m pytest -q -p no:cacheprovider --tb=short -rf tests/test_cuda.py 2>&1 | tee "$OUT/test_cuda.log" | tail -5
  say "test_cuda done"
  parity
  python3 scripts/make_random_gguf.py --preset llama-3.2-1b --type q4_k_m --share-layers -o /root/models/l1b.gguf > /dev/null 2>&1
  timeout 150 python3 scripts/gpu_e2e.py --model /root/models/l1b.gguf --name llama-1B-random-Q4_K_M --device cuda \
    --depths 0,4096 --prompt-from-empty 8192 --reps 1 --out "$OUT/e2e_1b.json" 2>&1 | tail -15
  say "1B e2e done"
  ;;
2)
  BENCH_ARGS=${BENCH_ARGS:-} timeout 240 python3 scripts/gpu_bench.py --out "$OUT/gpu_bench.json" 2>&1 | tee "$OUT/bench.log" | tail -45
  say "kernel bench done"
  ;;
3)
  parity
  ;;
4)
  G=/root/models/gemma-3-270m-q4_k_m.gguf
  if command -v zstd >/dev/null; then zstd -d -f -q /root/models/gemma.zst -o $G
  else
    python3 -m pip install -q --no-index --no-deps --target /tmp/site zwhl/*.whl
    python3 -c "import zstandard,shutil; shutil.copyfileobj(zstandard.ZstdDecompressor().stream_reader(open('/root/models/gemma.zst','rb')), open('$G','wb'), 1<<24)"
  fi
  python3 - <<'PY'
import hashlib
h = hashlib.sha256(open("/root/models/gemma-3-270m-q4_k_m.gguf", "rb").read()).hexdigest()
print("gemma sha256", h[:8], "...", h[-5:], "OK" if h.startswith("a5fd3b62") and h.endswith("a6818") else "MISMATCH")
PY
  parity "gemma or tactic or refused"
  tail -3 /root/llama_build.log; ls -la /root/llamacpp/ | head
  LB=/root/llamacpp/build/bin/llama-bench
  timeout ${E2E_TIMEOUT:-330} python3 scripts/gpu_e2e.py --model /root/llamacpp/q4km.gguf --name llama-8B-random-Q4_K_M \
    --device cuda --llama-bench $LB --depths ${DEPTHS:-0,4096,32768,131072} --reps ${REPS:-1} \
    --out "$OUT/gpu_e2e.json" 2>&1 | tee "$OUT/e2e.log" | tail -20
  say "8B e2e done"
  timeout 120 python3 scripts/gpu_e2e.py --model "$TACTIC_TEST_MODEL" --name gemma-3-270m-Q4_K_M --device cuda \
    --llama-bench $LB --depths 4096,32768 --prompt-from-empty 0 --reps 1 --rows-to "$OUT/gpu_e2e.json" 2>&1 | tee "$OUT/e2e_gemma.log" | tail -8
  say "gemma e2e done"
  ;;
esac
say "end"
