#!/usr/bin/env bash
# BUDGET 80
# pdl batch 2: every random/chunks/truncate parity test + the CUDA op tests with pdl=1 and
# decode_fuse=2 set for the whole process; gpu_e2e decode on a Gemma-270M-shaped random file,
# old (norm_fuse=0,pdl=0) vs new (pdl=1,decode_fuse=2) at 4K/32K; 8B: breakdown pdl0/pdl1/pdl1+fuse2
# at depth 4096, then gpu_e2e with the faster pdl=1 setting, then pdl=0.
set -u
G=/root/models/g270.gguf
if [ ! -f $G ]; then
  ( timeout 45 python3 scripts/make_random_gguf.py --preset gemma-3-270m --type q4_k_m --share-layers -o $G.tmp \
      > $OUT/gen_gemma.log 2>&1 && mv $G.tmp $G ) &
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader
echo "== tests, pdl=1 decode_fuse=2 in-process $(date +%T)"
TACTIC_TEST_CUDA_OPTIONS=pdl=1,decode_fuse=2 timeout 30 python3 - <<'PY' 2>&1 | tee $OUT/pytest.log | tail -22
import sys, pytest
from pytactic._native import lib
assert lib.tactic_cuda_set_option(b"pdl", 1) == 0 and lib.tactic_cuda_set_option(b"decode_fuse", 2) == 0
sys.exit(pytest.main(["-q", "-rs", "-p", "no:cacheprovider", "--durations=3", "tests/test_gpu_forward.py",
                      "tests/test_cuda.py", "tests/test_cuda_matvec_q8.py", "tests/test_tactic_gpu.py",
                      "-k", "random or chunks or truncate or attention or matvec or rms_norm or rope or backend"]))
PY
E2E="python3 scripts/gpu_e2e.py --device cuda --prompt-from-empty 0 --reps 1"
for i in $(seq 15); do [ -f $G ] && break; sleep 1; done
echo "== gemma e2e $(date +%T)"
timeout 8 $E2E --model $G --name gemma270m-random-q4_k_m --depths 4096,32768 --cuda-option norm_fuse=0 --cuda-option pdl=0 \
  --out $OUT/e2e_gemma_old.json 2>&1 | grep -v "^$"
timeout 8 $E2E --model $G --name gemma270m-random-q4_k_m --depths 4096,32768 --cuda-option pdl=1 --cuda-option decode_fuse=2 \
  --out $OUT/e2e_gemma_new.json 2>&1 | grep -v "^$"
echo "== 8B breakdown $(date +%T)"
wait_l8 70 || echo "8B file not ready"
for d in 4096; do
  timeout 9 python3 scripts/gpu_decode_breakdown.py --model $L8 --no-profile --depth $d --steps 64 \
    --config pdl0:pdl=0 --config pdl1:pdl=1 --config pdl1_fuse2:pdl=1,decode_fuse=2 --out $OUT/bd_8b_d$d.json 2>&1 | grep "=="
done
fuse=$(python3 -c "
import json; r={x['config']:x['wall_ms_median'] for x in json.load(open('$OUT/bd_8b_d4096.json'))['rows']}
print(2 if r.get('pdl1_fuse2', 9e9) < r.get('pdl1', 9e9) else 1)" 2>/dev/null || echo 1)
echo "== 8B e2e pdl=1 decode_fuse=$fuse $(date +%T)"
timeout 10 $E2E --model $L8 --name llama8b-random-q4_k_m --depths 0,4096 --cuda-option pdl=1 --cuda-option decode_fuse=$fuse \
  --out $OUT/e2e_8b_new.json 2>&1 | grep -v "^$"
echo "== 8B e2e pdl=0 $(date +%T)"
timeout 10 $E2E --model $L8 --name llama8b-random-q4_k_m --depths 0,4096 --cuda-option pdl=0 \
  --out $OUT/e2e_8b_old.json 2>&1 | grep -v "^$"
echo "== end $(date +%T)"
