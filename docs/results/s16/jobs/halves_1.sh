#!/usr/bin/env bash
# Session 16, call 1: option matvec_halves (v5h: a lane takes one of the warp's two rows and
# both halves of v5's Q4_K/Q5_K block parts) against v5: the matvec tests (v5h against the
# CPU's arithmetic and v5's bits; the decode-fusion logits), the matvec table (graph-replayed
# with PDL, as decode replays them), decode on the 8B file at depth 16, interleaved. Starts
# llama.cpp's build and the 8B file for call 2's side-by-side (setsid: they outlive the call).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build /root/models /root/llamacpp
xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
say "library $(cat .prebuilt/COMMIT)"
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader > "$OUT/gpu.txt"
tar xJf .bench/llama.cpp.tar.xz -C /root/llamacpp
setsid nohup bash -c "cmake -S /root/llamacpp/llama.cpp -B /root/llamacpp/build -G Ninja -DGGML_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release && cmake --build /root/llamacpp/build --target llama-bench -j10" \
  > /root/llama_build.log 2>&1 < /dev/null &
setsid nohup timeout 400 python3 scripts/make_random_gguf.py --preset llama-3.1-8b --type q4_k_m --share-layers \
  -o /root/models/l8b.gguf > /root/gen8b.log 2>&1 < /dev/null &
timeout 90 python3 scripts/gpu_bench.py --q8-variants v5pg,v5hpg,v5r8hpg,v5p,v5hp --cases Q4_K Q5_K \
  --out "$OUT/mv.json" > "$OUT/mv.log" 2>&1
say "matvec bench rc $?"; grep -v Warning "$OUT/mv.log" | tail -16
timeout 180 python3 scripts/pytest_shards.py 6 "$OUT/t_" tests/test_cuda_matvec_q8.py 2>&1 | tail -7 > "$OUT/tests_matvec.log"
say "matvec tests: $(cat $OUT/tests_matvec.log | tr '\n' ' ')"
timeout 150 python3 scripts/pytest_shards.py 6 "$OUT/f_" tests/test_gpu_forward.py -k "fusion_keeps or merge_quantizes" \
  2>&1 | tail -7 > "$OUT/tests_fusion.log"
say "fusion tests: $(cat $OUT/tests_fusion.log | tr '\n' ' ')"
grep -l -E "FAILED|Error" $OUT/t_*.log $OUT/f_*.log 2>/dev/null | head -3 | xargs -r tail -40 > "$OUT/fail.log"
while pgrep -f make_random_gguf >/dev/null && [ $(( $(date +%s) - t0 )) -lt 420 ]; do sleep 3; done
say "8B file: $(ls -la /root/models/l8b.gguf 2>&1) $(tail -1 /root/gen8b.log)"
timeout 120 python3 scripts/gpu_decode_breakdown.py --model /root/models/l8b.gguf --depth 16 --steps 64 --no-profile \
  --config v5: --config v5h:matvec_halves=1 --config v5b: --config v5hb:matvec_halves=1 --config v5c: \
  --config v5hc:matvec_halves=1 --out "$OUT/e2e16.json" > "$OUT/e2e16.log" 2>&1
say "decode A/B rc $?"; grep "==" "$OUT/e2e16.log"
say "llama.cpp build: $(tail -1 /root/llama_build.log)"
cd "$OUT" && tar czf logs.tgz t_*.log f_*.log 2>/dev/null; rm -f t_*.log f_*.log
say end
