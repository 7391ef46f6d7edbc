#!/usr/bin/env bash
# The lead's measurement sitting on the GPU machine: consecutive device calls (the machine
# stays warm 30 s between them), each carrying one piece of the real Gemma 3 270M file in
# .gmN/ (the 253 MB file does not fit in one call's 64 MiB: five raw pieces, 40 MB with
# call 1's wheels, llama.cpp source and xz'ed library, then 4 x 53.3 MB), appended in
# call order; PART=4 (the Gemma part) runs in the call that brings the last piece.
# Run from the repository root on the device: PART=1, 2, 3, 5, 4 bash scripts/device_sitting.sh
#   1: wheels, libtactic for sm_90, the 8B-shape Q4_K_M file started in the background,
#      the GPU tests (kernels, 8-bit matvec, Tactic on the GPU, device selection, parity
#      on random weights, n_gpu_layers);
#   2: 8B-shape decode/prefill, full attention at 0 / 4K / 32K, then Tactic at a forced
#      fraction of 0.10 at 32K (clustering's share of the fill logged), pytactic alone;
#   3: the same at 128K: full, then Tactic at 0.10 (T128: the Tactic specs instead);
# Env knobs: KSHARDS and PSHARDS (part 1's shard counts), GE2E=0 (part 4 without its decode rows and async tests), DEPTHS and FE (part 6's full-attention depths and prompt from empty, 0: none), KTESTS and LAYERS=0 (part 1's kernel test files; skip n_gpu_layers' tests), TFRACS (part 2's forced fractions at 32K), TOPTS (extra gpu_e2e.py options for the
# Tactic runs, e.g. --cuda-option tactic_group_budget=1), TCTX / TBF / TBOPTS (part 5's bench).
#   4: the real Gemma: checksum, JSON-schema cost (scripts/grammar_bench.py), parity tests,
#      decode at 4K and 32K, Tactic vs full on the GPU (scripts/tactic_device_quality.py:
#      KL, passkey, tok/s at 16K and 32K).
# With .bench/llama.cpp.tar.xz carried in call 1 (../shared/bench's source), call 1 also
# builds llama-bench for sm_90 in the background, and calls 2, 4 and 5 run it on the same
# files at the same depths (gpu_e2e.py --llama-bench): the side-by-side rows of issue 10.
#   6: (a short sitting, instead of 2, 3 and 5's llama-bench) the side-by-side rows in one call
#      (COPTS: gpu_e2e.py options for every pytactic run, e.g. --cuda-option NAME=VALUE);
#   7: the kernel tables (a short sitting): matvec per type and full decode attention vs SDPA
#      (scripts/gpu_bench.py; MVOPTS, ATTOPTS), Tactic's per-layer step at 32K-128K
#      (scripts/gpu_tactic_bench.py; TCTX, TBF, TBOPTS);
#   5: Tactic's per-layer step at 128K (scripts/gpu_tactic_bench.py), then llama-bench alone
#      at 131072 on the 8B file (its fills take minutes: a call of its own).
# Logs go to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PART=${PART:-1}
t0=$(date +%s)
say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
mkdir -p /root/models
for p in .gm*/gemma.gguf.part*; do  # each piece once, in call order, whatever stayed from an earlier call
  [ -f "$p" ] || continue
  b=$(basename "$p")
  grep -qx "$b" /root/models/pieces.txt 2>/dev/null || { cat "$p" >> /root/models/gemma.partial && echo "$b" >> /root/models/pieces.txt; }
  rm -f "$p"
  say "piece $b: $(stat -c %s /root/models/gemma.partial) bytes"
done
export PYTHONPATH=/tmp/site:$PWD
export TACTIC_LIB=/root/build/libtactic.so
export TACTIC_TEST_MODEL=/root/models/gemma-3-270m-q4_k_m.gguf
G=$TACTIC_TEST_MODEL
L8=/root/models/l8b.gguf
LB=/root/llamacpp/build/bin/llama-bench
# llama-bench's arguments for gpu_e2e.py once it is built (waits up to $1 s for the build)
llama_args() {
  local w=0
  while [ ! -x $LB ] && pgrep -f "llamacpp/build" >/dev/null && [ $w -lt "$1" ]; do sleep 5; w=$((w + 5)); done
  [ -x $LB ] && echo "--llama-bench $LB" || { say "no llama-bench: $(tail -3 /root/llama_build.log 2>/dev/null)" >&2; echo ""; }
}

# PART=0: a call that only brings its piece (and, with .whl3, jsonschema and lark for
# tests/test_grammar.py's references).
if [ "$PART" = 0 ]; then
  [ -d .whl3 ] && { python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl3/*.whl || exit 1; }
  say "end (pieces only)"; exit 0
fi
case "$PART" in
1)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.total --format=csv | tee "$OUT/nvidia_smi.txt"
  if [ -f .prebuilt/libtactic.so.xz ]; then  # built here from this tree for sm_90 (saves the device's build minutes)
    mkdir -p /root/build && xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so && say "prebuilt library: $(cat .prebuilt/COMMIT)"
  else
    cmake -S . -B /root/build -G Ninja -DTACTIC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 > "$OUT/build.log" 2>&1 &&
      cmake --build /root/build -j16 --target tactic >> "$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
    say "built $(git log --oneline -1 2>/dev/null)"
  fi
  if [ -f .bench/llama.cpp.tar.xz ]; then  # llama.cpp for the side-by-side rows, built while the tests run
    mkdir -p /root/llamacpp && tar xJf .bench/llama.cpp.tar.xz -C /root/llamacpp
    setsid nohup bash -c "cmake -S /root/llamacpp/llama.cpp -B /root/llamacpp/build -G Ninja -DGGML_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
      -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release && cmake --build /root/llamacpp/build --target llama-bench -j12" \
      > /root/llama_build.log 2>&1 < /dev/null &
    say "llama.cpp build started"
  fi
  setsid nohup timeout 400 python3 scripts/make_random_gguf.py --preset llama-3.1-8b --type q4_k_m --share-layers \
    -o $L8 > /root/gen8b.log 2>&1 < /dev/null &
  # KTESTS: the kernel test files (a short sitting names the ones its changes touch); each set in
  # shards run at once (scripts/pytest_shards.py: 16 cores, one GPU)
  timeout ${KTIME:-240} python3 scripts/pytest_shards.py ${KSHARDS:-8} "$OUT/tests_kernels_" ${KTESTS:-tests/test_cuda.py tests/test_cuda_matvec_q8.py \
    tests/test_tactic_gpu.py tests/test_device_select.py tests/test_cuda_prefill_attention.py}
  say "kernel tests done"
  timeout ${PTIME:-300} python3 scripts/pytest_shards.py ${PSHARDS:-6} "$OUT/tests_parity_" tests/test_gpu_forward.py -k "random or chunks or truncate"
  [ -f tests/test_gpu_layers.py ] && [ "${LAYERS:-1}" = 1 ] && timeout 100 python3 -m pytest -q -p no:cacheprovider --tb=short -rfxs tests/test_gpu_layers.py \
    2>&1 | tee "$OUT/tests_gpu_layers.log" | tail -4
  say "parity tests done"
  ;;
2)
  while pgrep -f make_random_gguf >/dev/null && [ $(( $(date +%s) - t0 )) -lt 200 ]; do sleep 2; done
  say "8B file: $(ls -la $L8 2>&1)"
  LBA=$(llama_args 150)
  timeout 330 python3 scripts/gpu_e2e.py --model $L8 --name llama-8B-random-Q4_K_M-pytactic-quantizer --device cuda \
    --depths 0,4096,32768 --prompt-from-empty ${FROM_EMPTY:-32768} --reps ${REPS:-1} $LBA --out "$OUT/e2e_8b_full.json" 2>&1 | tee "$OUT/e2e_8b_full.log" | tail -12
  say "8B full done"
  for f in ${TFRACS:-0.1}; do  # Tactic's forced fractions at 32K ($TOPTS: extra gpu_e2e options, e.g. --cuda-option ...)
    timeout 100 python3 scripts/gpu_e2e.py --model $L8 --name llama-8B-random-Q4_K_M-pytactic-quantizer --device cuda \
      --depths 32768 --prompt-from-empty 0 --reps 1 --attention tactic --model-kwarg tactic_force_fraction=$f ${TOPTS:-} \
      --out "$OUT/e2e_8b_tactic32k_$f.json" 2>&1 | tee "$OUT/e2e_8b_tactic32k_$f.log" | tail -3
  done
  say "8B tactic 32K done"
  ;;
3)
  for spec in "full" ${T128:-"tactic --model-kwarg tactic_force_fraction=0.1"}; do
    name=$(echo $spec | cut -d' ' -f1)$(echo $spec | grep -o 'fraction=[0-9.]*' | cut -d= -f2)
    timeout 270 python3 scripts/gpu_e2e.py --model $L8 --name llama-8B-random-Q4_K_M-pytactic-quantizer --device cuda \
      --depths 131072 --prompt-from-empty 0 --reps 1 --attention $spec ${TOPTS:-} \
      --out "$OUT/e2e_8b_${name}128k.json" 2>&1 | tee "$OUT/e2e_8b_${name}128k.log" | tail -6
    say "8B $name 128K done"
  done
  ;;
4)
  [ -f "$G" ] || mv /root/models/gemma.partial "$G" || exit 1
  python3 - <<'PY'
import hashlib, os
h = hashlib.sha256(open(os.environ["TACTIC_TEST_MODEL"], "rb").read()).hexdigest()
print("gemma sha256", h[:8], "...", h[-5:], "OK" if h.startswith("a5fd3b62") and h.endswith("a6818") else "MISMATCH")
PY
  if [ "${GRAMMAR:-1}" = 1 ]; then  # GRAMMAR=0: a short sitting skips the JSON-schema cost and its tests
    timeout 200 python3 scripts/grammar_bench.py --model $G --repeats 9 --tokens 64 --breakdown 2>&1 | tee "$OUT/grammar_gpu.log" | tail -30
    say "grammar cost done"
  fi
  timeout 250 python3 -m pytest -q -s -p no:cacheprovider --tb=short -rfxs tests/test_gpu_forward.py -k "gemma or tactic or refused" \
    2>&1 | tee "$OUT/tests_parity_gemma.log" | tail -6
  # the GPU against llama.cpp's own outputs (prints the perplexities)
  timeout 100 python3 -m pytest -q -s -p no:cacheprovider --tb=short -rfxs tests/test_gpu_refs.py \
    2>&1 | tee "$OUT/tests_gpu_refs.log" | tail -8
  [ "${GE2E:-1}" = 1 ] && timeout 100 python3 -m pytest -q -p no:cacheprovider --tb=short -rfxs tests/test_eval_async.py \
    2>&1 | tee "$OUT/tests_eval_async_gpu.log" | tail -3
  [ "${GRAMMAR:-1}" = 1 ] && timeout 150 python3 -m pytest -q -p no:cacheprovider --tb=short -rfxs tests/test_grammar.py \
    2>&1 | tee "$OUT/tests_grammar_gpu.log" | tail -4
  say "gemma tests done"
  [ "${GE2E:-1}" = 1 ] && timeout 150 python3 scripts/gpu_e2e.py --model $G --name gemma-3-270m-Q4_K_M --device cuda --depths 4096,32768 \
    --prompt-from-empty 0 --reps 1 $(llama_args 0) --out "$OUT/e2e_gemma.json" 2>&1 | tail -6
  say "gemma decode done"
  [ "${QUALITY:-1}" = 0 ] && { say "end (no Tactic quality)"; exit 0; }
  timeout ${QTIME:-200} python3 scripts/tactic_device_quality.py --model $G --device cuda --ctx 16384 32000 --kl-steps 512 ${QOPTS:-} \
    --trials 10 --speed-steps 256 --json "$OUT/tactic_quality_gpu.json" 2>&1 | tee "$OUT/tactic_quality_gpu.log" | tail -8
  say "gemma tactic quality done"
  ;;
5)
  # Tactic's step per global layer at 128K (issue 11)
  timeout 80 python3 scripts/gpu_tactic_bench.py --contexts ${TCTX:-131072} --fractions ${TBF:-0.025,0.05,0.1,0.25} --iters 200 --p 0.9 ${TBOPTS:-} \
    --out "$OUT/tactic_bench128k.json" > "$OUT/tactic_bench128k.log" 2>&1; tail -8 "$OUT/tactic_bench128k.log"
  say "tactic bench done"
  timeout 400 python3 scripts/gpu_e2e.py --model $L8 --name llama-8B-random-Q4_K_M-pytactic-quantizer --skip-pytactic \
    --depths ${LDEPTHS:-131072} --prompt-from-empty ${LFROM:-0} --reps 1 $(llama_args 240) --out "$OUT/e2e_8b_llama128k.json" 2>&1 | tee "$OUT/e2e_8b_llama128k.log" | tail -6
  ;;
6)
  # The whole side-by-side in one call (a short sitting): pytactic first (full at 0 / 4K / 32K
  # / 128K and a 32K prompt from empty; Tactic at 32K and 128K), llama-bench after (its build,
  # started in call 1, has had the time), then llama.cpp's figures merged into both row sets.
  while pgrep -f make_random_gguf >/dev/null && [ $(( $(date +%s) - t0 )) -lt 200 ]; do sleep 2; done
  E="python3 scripts/gpu_e2e.py --model $L8 --name llama-8B-random-Q4_K_M-pytactic-quantizer --reps 1 ${COPTS:-}"
  timeout 150 $E --device cuda --depths ${DEPTHS:-0,4096,32768,131072} --prompt-from-empty ${FE:-32768} --out "$OUT/e2e_8b_full.json" \
    2>&1 | tee "$OUT/e2e_8b_full.log" | tail -8
  say "8B full done"
  TSPEC="--attention tactic --model-kwarg tactic_force_fraction=${TFRAC:-0.1} ${TOPTS:-}"
  timeout 120 $E --device cuda --depths 32768,131072 --prompt-from-empty 0 $TSPEC --out "$OUT/e2e_8b_tactic.json" \
    2>&1 | tee "$OUT/e2e_8b_tactic.log" | tail -5
  say "8B tactic done"
  if [ -n "$(llama_args 240)" ]; then
    LJ="$OUT/llama_bench_tests.json"
    timeout 200 $LB -m $L8 -ngl 99 -fa 1 -r 1 -o json -p 512 -n 128 -d ${DEPTHS:-0,4096,32768,131072} > "$LJ" 2>"$OUT/llama_bench.err"
    [ "${FE:-32768}" != 0 ] && timeout 40 $LB -m $L8 -ngl 99 -fa 1 -r 1 -o json -p ${FE:-32768} -n 0 -d 0 >> "$LJ" 2>>"$OUT/llama_bench.err"
    say "llama-bench done"
    $E --skip-pytactic --llamacpp-json "$LJ" --depths ${DEPTHS:-0,4096,32768,131072} --prompt-from-empty ${FE:-32768} \
      --rows-to "$OUT/e2e_8b_full.json" 2>&1 | tail -8
    $E --skip-pytactic --llamacpp-json "$LJ" --depths 32768,131072 --prompt-from-empty 0 $TSPEC \
      --rows-to "$OUT/e2e_8b_tactic.json" 2>&1 | tail -4
  fi
  ;;
7)
  timeout 90 python3 scripts/gpu_bench.py --matvec-only ${MVOPTS:-} --out "$OUT/matvec.json" > "$OUT/matvec.log" 2>&1
  tail -30 "$OUT/matvec.log"; say "matvec table done"
  timeout 60 python3 scripts/gpu_bench.py --attention-only --no-eager --contexts 16384 32768 65536 131072 ${ATTOPTS:-} \
    --out "$OUT/attention.json" > "$OUT/attention.log" 2>&1
  tail -16 "$OUT/attention.log"; say "attention table done"
  timeout 120 python3 scripts/gpu_tactic_bench.py --contexts ${TCTX:-32768,65536,131072} \
    --fractions ${TBF:-0.025,0.05,0.1,0.143,0.194,0.25} --iters 100 --p 0.9 ${TBOPTS:-} \
    --out "$OUT/tactic_bench.json" > "$OUT/tactic_bench.log" 2>&1; grep -v Warning "$OUT/tactic_bench.log" | tail -40
  say "tactic bench done"
  ;;
esac
say "end"
