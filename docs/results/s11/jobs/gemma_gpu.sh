#!/usr/bin/env bash
# Session 11, lead: the real Gemma 3 270M on the H200 in consecutive calls. Each call brings
# one raw piece of the file (.gmN/, appended in call order); the first also the wheels and the
# library prebuilt here (.prebuilt/); STEP=run (the call with the last piece) assembles the
# file and runs Tactic's KL against full attention on the GPU, with and without full
# attention's precise decode kernel (attn_kernel 0: f32 q and weights; the default kernel 8
# rounds q and the weights to f16), at P = 0.9 and at P = 1 (the GPU's floor).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /root/models
export PYTHONUNBUFFERED=1
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
for p in .gm*/gemma.gguf.part*; do
  [ -f "$p" ] || continue
  b=$(basename "$p")
  grep -qx "$b" /root/models/pieces.txt 2>/dev/null || { cat "$p" >> /root/models/gemma.partial && echo "$b" >> /root/models/pieces.txt; }
  say "piece $b: $(stat -c %s /root/models/gemma.partial) bytes"
done
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
if [ -f .prebuilt/libtactic.so.xz ]; then
  mkdir -p /root/build && xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so && say "library $(cat .prebuilt/COMMIT)"
fi
[ "${STEP:-piece}" = run ] || exit 0
G=/root/models/gemma-3-270m-q4_k_m.gguf
[ -f $G ] || mv /root/models/gemma.partial $G || exit 1
sha256sum $G | tee "$OUT/gemma_sha256.txt"
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so
Q="python3 scripts/tactic_device_quality.py --model $G --device cuda --kl-steps 512 --trials 0 --speed-steps 0 --kl-ref docs/results/kl_cpu_s10.npz"
run() {  # name, then the options
  local n=$1; shift
  timeout ${QTIME:-100} $Q "$@" --kl-out "$OUT/kl_gpu_$n.npz" --json "$OUT/kl_gpu_$n.json" > "$OUT/kl_gpu_$n.log" 2>&1
  say "$n: $(grep -h 'paired\|^| [0-9]' "$OUT/kl_gpu_$n.log" | tr '\n' ' ')"
}
run p09 --ctx 16384 32000
run p1 --ctx 16384 --p 1.0
run k0_p09 --ctx 16384 32000 --cuda-option attn_kernel=0
run k0_p1 --ctx 16384 --p 1.0 --cuda-option attn_kernel=0
say end
