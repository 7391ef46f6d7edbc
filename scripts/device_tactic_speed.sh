#!/usr/bin/env bash
# One device call for the speed of Tactic's GPU decode step (issue 11): every piece under
# its own timeout, one broken piece does not stop the others; logs go to $OUT.
#   1. wheels; the library (lib/libtactic.so when it travelled, built here for sm_90 and
#      loading a GPU there, else built into /root/build with -j16);
#   2. the 8B-shape Q4_K_M random file started in the background at once;
#   3. tests/test_tactic_gpu.py (the selection twins, both attention kernels);
#   4. the per-layer microbenchmark at 128K and 32K (fractions 0.025/0.05/0.1/0.25), the
#      earlier kernels (tactic_fused=0) at 128K and 0.10 in the same sitting, and the
#      random-model case (each query head its own direction: the union the e2e attends);
#   5. end to end at 32K: Tactic 0.10, then full; with nsys present, one more short Tactic
#      run under nsys for a per-kernel breakdown of the e2e decode step.
# Run from the travelled copy of a worktree: cd .gpu/<name> && bash scripts/device_tactic_speed.sh
# (COMMIT, one line: the tree's `git log --oneline -1`, written beside it before the call).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
WHL=${WHL:-../../.whl}
L8=/root/models/l8b.gguf
t0=$(date +%s)
say() { echo "[$(( $(date +%s) - t0 ))s] $*" | tee -a "$OUT/timeline.txt"; }
left() { echo $(( ${BUDGET_S:-200} - ($(date +%s) - t0) )); }  # seconds this call has left
tmo() { local l=$(( $(left) - 5 )); [ "$l" -lt "$1" ] && echo $(( l > 1 ? l : 1 )) || echo "$1"; }  # min(N, what is left)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $WHL/*.whl \
  > "$OUT/pip.log" 2>&1 || { cat "$OUT/pip.log"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD
export TACTIC_COMMIT=$(cat COMMIT 2>/dev/null)  # the travelled copy has no git of its own
say "tree: ${TACTIC_COMMIT:-?}"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee "$OUT/nvidia_smi.txt"
{ command -v nsys; ls -d /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems*/bin/nsys /usr/local/cuda*/nsight-systems*/bin/nsys; } \
  > "$OUT/nsys_where.txt" 2>/dev/null
NSYS=$(head -1 "$OUT/nsys_where.txt")
say "nsys: ${NSYS:-none}"
if [ -f lib/libtactic.so ] && TACTIC_LIB=$PWD/lib/libtactic.so python3 -c \
    "from pytactic._native import lib; assert lib.tactic_cuda_device_count() > 0; assert lib.tactic_cuda_set_option(b'tactic_fused', 1) == 0" \
    2> "$OUT/lib_check.log"; then  # a library that travelled must know this tree's options, else it is rebuilt
  export TACTIC_LIB=$PWD/lib/libtactic.so
  say "using the library that travelled"
else
  cmake -S . -B /root/build -G Ninja -DTACTIC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 > "$OUT/build.log" 2>&1 &&
    cmake --build /root/build -j16 --target tactic >> "$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
  export TACTIC_LIB=/root/build/libtactic.so
  say "built"
fi
mkdir -p /root/models
[ -f $L8 ] || setsid nohup timeout 300 python3 scripts/make_random_gguf.py --preset llama-3.1-8b --type q4_k_m \
  --share-layers -o $L8.part > "$OUT/gen8b.log" 2>&1 < /dev/null && mv $L8.part $L8 &
say "8B file started"

timeout $(tmo 90) python3 -m pytest -q -p no:cacheprovider --tb=short -rfs tests/test_tactic_gpu.py \
  > "$OUT/test_tactic_gpu.log" 2>&1
tail -4 "$OUT/test_tactic_gpu.log"; say "tests done"

B="python3 scripts/gpu_tactic_bench.py --fractions 0.025,0.05,0.1,0.25 --iters 200 --p 0.9"
timeout $(tmo 70) $B --contexts 131072 --out "$OUT/bench128k.json" > "$OUT/bench128k.log" 2>&1
tail -8 "$OUT/bench128k.log"; say "bench 128K done"
timeout $(tmo 40) python3 scripts/gpu_tactic_bench.py --contexts 131072 --fractions 0.1 --iters 200 --no-mass-row \
  --queries independent --out "$OUT/bench128k_indep.json" > "$OUT/bench128k_indep.log" 2>&1
tail -3 "$OUT/bench128k_indep.log"; say "bench 128K independent queries done"
timeout $(tmo 40) python3 scripts/gpu_tactic_bench.py --contexts 131072 --fractions 0.1 --iters 200 --no-mass-row \
  --fused 0 --out "$OUT/bench128k_fused0.json" > "$OUT/bench128k_fused0.log" 2>&1
tail -3 "$OUT/bench128k_fused0.log"; say "bench 128K earlier kernels done"

E="python3 scripts/gpu_e2e.py --model $L8 --name llama-8B-random-Q4_K_M-pytactic-quantizer --device cuda --depths 32768 --prompt-from-empty 0 --reps 1"
while [ ! -f $L8 ] && [ "$(left)" -gt 60 ]; do sleep 2; done
say "8B file: $(ls -la $L8 2>&1)"
if [ -f $L8 ] && [ "$(left)" -gt 45 ]; then
  timeout $(( $(left) - 5 )) $E --attention tactic --model-kwarg tactic_force_fraction=0.1 \
    --out "$OUT/e2e32k_tactic.json" > "$OUT/e2e32k_tactic.log" 2>&1
  tail -3 "$OUT/e2e32k_tactic.log"; say "e2e 32K Tactic 0.10 done"
fi
if [ -f $L8 ] && [ "$(left)" -gt 35 ]; then
  timeout $(( $(left) - 5 )) $E --out "$OUT/e2e32k_full.json" > "$OUT/e2e32k_full.log" 2>&1
  tail -3 "$OUT/e2e32k_full.log"; say "e2e 32K full done"
fi
if [ "$(left)" -gt 30 ]; then
  timeout $(( $(left) - 3 )) $B --contexts 32768 --out "$OUT/bench32k.json" > "$OUT/bench32k.log" 2>&1
  tail -8 "$OUT/bench32k.log"; say "bench 32K done"
fi
if [ -n "$NSYS" ] && [ -f $L8 ] && [ "$(left)" -gt 60 ]; then
  timeout $(( $(left) - 25 )) "$NSYS" profile -t cuda --cuda-graph-trace=node -o "$OUT/nsys32k" -f true \
    $E --n-prompt 1 --n-gen 32 --attention tactic --model-kwarg tactic_force_fraction=0.1 --out /tmp/e2e_nsys.json \
    > "$OUT/nsys32k_run.log" 2>&1
  timeout 20 "$NSYS" stats -r cuda_gpu_kern_sum -f csv -o "$OUT/nsys32k" "$OUT/nsys32k.nsys-rep" > "$OUT/nsys32k_stats.log" 2>&1
  rm -f "$OUT/nsys32k.sqlite"
  say "nsys done"
fi
say "end"
