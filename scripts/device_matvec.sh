#!/usr/bin/env bash
# One device call for the decode-speed work of issue 10 (the v4 matvec and decode
# fusion), from the copy of this tree that travels (cd into it first). Every step has its
# own timeout and one failing step does not stop the next. In order:
#   wheels; libtactic (prebuilt/libtactic.so when it loads there and was built from this
#   tree, else built for sm_90); the 8B-shape Q4_K_M file started in the background;
#   tests/test_cuda_matvec_q8.py; the matvec table (v3 / v4, every 8B shape);
#   tests/test_gpu_forward.py -k random (parity + fused == unfused bytes);
#   gpu_e2e.py at depths 0 and 4096 with the new default, with decode_fuse=2 (wq/wk/wv in
#   one launch), with that and matvec_rows=1, and with the old default
#   (--cuda-option matvec_q8_kernel=3 --cuda-option decode_fuse=0);
#   the per-kernel breakdown of a decode step (scripts/gpu_decode_breakdown.py).
# At most 8 files come back: run.log (everything), tests.log, matvec.json, e2e_new.json,
# e2e_qkv.json, e2e_qkv_r1.json, e2e_old.json, breakdown.json.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
t0=$(date +%s)
say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
exec > >(tee -a "$OUT/run.log") 2>&1
L8=/root/models/l8b.gguf
mkdir -p /root/models
say "tree $(cat COMMIT.txt 2>/dev/null)"
WHL=${WHL:-$(for d in .whl ../.whl ../../.whl; do [ -d $d ] && echo $d && break; done)}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $WHL/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.total --format=csv
command -v nsys ncu || true

# The library: the prebuilt one if it loads here and reports a CUDA device, else a build.
LIB=""
if [ -f prebuilt/libtactic.so ] && [ "$(cat prebuilt/COMMIT.txt 2>/dev/null)" = "$(cat COMMIT.txt 2>/dev/null)" ]; then
  if TACTIC_LIB=$PWD/prebuilt/libtactic.so timeout 30 python3 -c \
      'from pytactic._native import lib; import sys; sys.exit(0 if lib.tactic_cuda_device_count() > 0 else 1)'; then
    LIB=$PWD/prebuilt/libtactic.so; say "prebuilt library loads"
  else
    say "prebuilt library does not load here: building"
  fi
fi
if [ -z "$LIB" ]; then
  timeout 240 bash -c "cmake -S . -B /root/build -G Ninja -DTACTIC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 > /tmp/build.log 2>&1 &&
    cmake --build /root/build -j16 --target tactic >> /tmp/build.log 2>&1" || { tail -40 /tmp/build.log; exit 1; }
  LIB=/root/build/libtactic.so; say "built"
fi
export TACTIC_LIB=$LIB

[ -f $L8 ] || setsid nohup timeout 170 python3 scripts/make_random_gguf.py --preset llama-3.1-8b --type q4_k_m \
  --share-layers -o $L8 > /root/gen8b.log 2>&1 < /dev/null &

timeout 75 python3 -m pytest -q -p no:cacheprovider --tb=short -rfs tests/test_cuda_matvec_q8.py 2>&1 \
  | tee -a "$OUT/tests.log" | tail -8
say "matvec_q8 tests done"

timeout 80 python3 scripts/gpu_bench.py --matvec-only --quick --cases 8B --out "$OUT/matvec.json" 2>&1 \
  | grep -v "^matvec " | tail -30
say "matvec table done"

parity() {
  timeout 70 python3 -m pytest -q -p no:cacheprovider --tb=short -rfxs tests/test_gpu_forward.py -k random 2>&1 \
    | tee -a "$OUT/tests.log" | tail -8
  say "parity tests done"
  PARITY_DONE=1
}
PARITY_DONE=0
ready() { [ -f $L8 ] && ! pgrep -f make_random_gguf > /dev/null; }
ready || parity
while ! ready && [ $(( $(date +%s) - t0 )) -lt 200 ]; do sleep 2; done
say "8B file: $(ls -la $L8 2>&1) $(tail -1 /root/gen8b.log)"

# new: the default (v4 + fusion); qkv: wq/wk/wv in one launch too; qkv_r1: and v3's grid
# (a row per warp) for every v4 launch; old: the earlier default (v3, unfused)
for v in new qkv qkv_r1 old; do
  case $v in
    new) opts="" ;;
    qkv) opts="--cuda-option decode_fuse=2" ;;
    qkv_r1) opts="--cuda-option decode_fuse=2 --cuda-option matvec_rows=1" ;;
    old) opts="--cuda-option matvec_q8_kernel=3 --cuda-option decode_fuse=0" ;;
  esac
  timeout 60 python3 scripts/gpu_e2e.py --model $L8 --name llama-8B-random-Q4_K_M-pytactic-quantizer --device cuda \
    --depths 0,4096 --prompt-from-empty 0 --reps 1 $opts --out "$OUT/e2e_$v.json" 2>&1 | tail -5
  say "e2e $v done"
done

timeout 75 python3 scripts/gpu_decode_breakdown.py --model $L8 --steps 32 \
  --config old:matvec_q8_kernel=3,decode_fuse=0 --config v4:decode_fuse=0 --config new: \
  --config qkv:decode_fuse=2 --config qkv_r1:decode_fuse=2,matvec_rows=1 \
  --out "$OUT/breakdown.json" 2>&1 | tail -80
say "breakdown done"

[ $PARITY_DONE = 1 ] || parity
say "end"
