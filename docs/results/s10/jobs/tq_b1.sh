#!/usr/bin/env bash
# tq batch 1: the output estimate's tests (whole Tactic GPU file), memcheck on a few, its cost.
set -u
export PYTHONUNBUFFERED=1
git log --oneline -1 | tee $OUT/commit.txt
timeout 125 python3 scripts/pytest_shards.py 16 $OUT/t tests/test_tactic_gpu.py 2>&1 | tail -40 | tee $OUT/tests.log
( timeout 75 compute-sanitizer --tool memcheck --print-limit 20 python3 -m pytest -x -q tests/test_tactic_gpu.py \
    -k "(tail_estimate_every_merge and shape0 and (att2 or att5 or fused0) and (b1 or b37)) or test_backend_tactic_tail[tiny_llama]" \
    > $OUT/memcheck.log 2>&1; echo "memcheck rc $?" >> $OUT/memcheck.log ) &
timeout 80 python3 scripts/gpu_tactic_bench.py --iters 100 --contexts 131072,32768 --fractions 0.1 \
    --variants "tail=0" --out $OUT/bench_p09.json 2>&1 | tee $OUT/bench_p09.log
wait
tail -5 $OUT/memcheck.log
