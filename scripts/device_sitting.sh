#!/usr/bin/env bash
# The lead's measurement sitting on the GPU machine: four consecutive device calls (the
# machine stays warm 30 s between them), each carrying one quarter of the zstd'ed real
# Gemma 3 270M file in .modelsN/ (a whole file does not fit in one call's 64 MiB).
# Run from the repository root on the device: PART=1..4 bash scripts/device_sitting.sh
#   1: wheels, libtactic for sm_90, the 8B-shape Q4_K_M file started in the background,
#      the GPU tests (kernels, 8-bit matvec, Tactic on the GPU, device selection, parity
#      on random weights);
#   2: 8B-shape decode/prefill, full attention, pytactic alone (no llama.cpp this sitting);
#   3: 8B-shape Tactic at a forced fraction of 0.10 at 32K (scripts/device_tactic_gpu.sh e2e);
#   4: the real Gemma: checksum, parity tests, JSON-schema cost (scripts/grammar_bench.py),
#      decode at 4K and 32K with 8-bit activations and without.
# Logs go to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PART=${PART:-1}
t0=$(date +%s)
say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
mkdir -p /root/models
for p in .models*/gemma.zst.part*; do  # each piece once, whatever stayed from an earlier call
  [ -f "$p" ] || continue
  b=$(basename "$p")
  grep -qx "$b" /root/models/pieces.txt 2>/dev/null || { cat "$p" >> /root/models/gemma.zst && echo "$b" >> /root/models/pieces.txt; }
  rm -f "$p"
  say "piece $b: $(stat -c %s /root/models/gemma.zst) bytes"
done
export PYTHONPATH=/tmp/site:$PWD
export TACTIC_LIB=/root/build/libtactic.so
export TACTIC_TEST_MODEL=/root/models/gemma-3-270m-q4_k_m.gguf
G=$TACTIC_TEST_MODEL
L8=/root/models/l8b.gguf

case "$PART" in
1)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.total --format=csv | tee "$OUT/nvidia_smi.txt"
  cmake -S . -B /root/build -G Ninja -DTACTIC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 > "$OUT/build.log" 2>&1 &&
    cmake --build /root/build -j16 --target tactic >> "$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
  say "built $(git log --oneline -1 2>/dev/null)"
  setsid nohup timeout 400 python3 scripts/make_random_gguf.py --preset llama-3.1-8b --type q4_k_m --share-layers \
    -o $L8 > /root/gen8b.log 2>&1 < /dev/null &
  timeout 200 python3 -m pytest -q -p no:cacheprovider --tb=short -rfs tests/test_cuda.py tests/test_cuda_matvec_q8.py \
    tests/test_tactic_gpu.py tests/test_device_select.py 2>&1 | tee "$OUT/tests_kernels.log" | tail -6
  say "kernel tests done"
  timeout 200 python3 -m pytest -q -p no:cacheprovider --tb=short -rfxs tests/test_gpu_forward.py \
    -k "random or chunks or truncate" 2>&1 | tee "$OUT/tests_parity_random.log" | tail -8
  say "parity tests done"
  ;;
2)
  while pgrep -f make_random_gguf >/dev/null && [ $(( $(date +%s) - t0 )) -lt 200 ]; do sleep 2; done
  say "8B file: $(ls -la $L8 2>&1)"
  timeout 200 python3 scripts/gpu_e2e.py --model $L8 --name llama-8B-random-Q4_K_M-pytactic-quantizer --device cuda \
    --depths 0,4096,32768 --prompt-from-empty 0 --reps 1 --out "$OUT/e2e_8b_full.json" 2>&1 | tee "$OUT/e2e_8b_full.log" | tail -6
  say "8B full done"
  ;;
3)
  WHL=.whl STEP=e2e FILE=$L8 DEPTHS=32768 FRACTIONS=0.1 E2E_TIMEOUT=200 bash scripts/device_tactic_gpu.sh 2>&1 | tail -12
  say "8B tactic done"
  ;;
4)
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .zwhl/*.whl; python3 -c "import zstandard,shutil; shutil.copyfileobj(zstandard.ZstdDecompressor().stream_reader(open('/root/models/gemma.zst','rb')), open('$G','wb'), 1<<24)" || exit 1
  python3 - <<'PY'
import hashlib, os
h = hashlib.sha256(open(os.environ["TACTIC_TEST_MODEL"], "rb").read()).hexdigest()
print("gemma sha256", h[:8], "...", h[-5:], "OK" if h.startswith("a5fd3b62") and h.endswith("a6818") else "MISMATCH")
PY
  timeout 150 python3 scripts/grammar_bench.py --model $G --repeats 5 --tokens 64 2>&1 | tee "$OUT/grammar_gpu.log" | tail -5
  say "grammar cost done"
  timeout 100 python3 -m pytest -q -p no:cacheprovider --tb=short -rfxs tests/test_gpu_forward.py -k "gemma or tactic or refused" \
    2>&1 | tee "$OUT/tests_parity_gemma.log" | tail -6
  say "gemma tests done"
  timeout 90 python3 scripts/gpu_e2e.py --model $G --name gemma-3-270m-Q4_K_M --device cuda --depths 4096,32768 \
    --prompt-from-empty 0 --reps 1 --out "$OUT/e2e_gemma.json" 2>&1 | tail -4
  timeout 60 python3 scripts/gpu_e2e.py --model $G --name gemma-3-270m-Q4_K_M-f32act --device cuda --cuda-option matvec_q8=0 \
    --depths 4096,32768 --prompt-from-empty 0 --reps 1 --out "$OUT/e2e_gemma_f32act.json" 2>&1 | tail -4
  say "gemma decode done"
  ;;
esac
say "end"
