#!/usr/bin/env bash
# Session 17, calls 1-2: the paths of sm_80 / sm_86 cards on the H200 (TACTIC_CUDA_EMULATE caps
# the limits the dispatch reads: 163 / 99 KB of shared memory a block, no TMA / PDL), with
# the sm_90 build: the GPU forward pass against the CPU, the prefill kernel against its
# float64 twin, Tactic's step and the tactic backend (head dims 64 / 128 / 256) against
# their twins; the same selection unemulated first (the H200's own paths).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build; xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so PYTHONUNBUFFERED=1
say "library $(cat .prebuilt/COMMIT)"
FWD=(tests/test_gpu_forward.py -k "random_weights_gpu_matches_cpu or decode_attention_kernels_match_cpu or prefill_in_chunks or truncate_and_graph_replay")
TAC=(tests/test_tactic_gpu.py -k "backend or mma_attention_matches_reference or attend_variants or step_matches_twin or mass_target_matches_twin")
PRE=(tests/test_cuda_prefill_attention.py)
for card in ${CARDS:-sm_86 sm_80}; do
  if [ $card = none ]; then unset TACTIC_CUDA_EMULATE; else export TACTIC_CUDA_EMULATE=$card; fi
  for s in FWD TAC PRE; do
    declare -n sel=$s
    timeout 200 python3 scripts/pytest_shards.py 16 "$OUT/${card}_${s}_" "${sel[@]}" > "$OUT/${card}_${s}.sum" 2>&1
    say "$card $s rc $?: $(tail -1 $OUT/${card}_${s}.sum)"
    grep -l -E "FAILED|Error" $OUT/${card}_${s}_*.log 2>/dev/null | head -2 | xargs -r tail -n 60 >> "$OUT/fail_${card}.log"
    rm -f $OUT/${card}_${s}_*.log
  done
done
unset TACTIC_CUDA_EMULATE
timeout 120 python3 -m pytest -q -rs tests/test_gpu_emulated_arch.py -k emulated_card_names > "$OUT/names.log" 2>&1
say "card names rc $?: $(tail -1 $OUT/names.log)"
cat $OUT/*.sum > "$OUT/summary.log"; rm -f $OUT/*.sum
