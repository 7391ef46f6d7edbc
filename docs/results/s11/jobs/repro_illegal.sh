#!/usr/bin/env bash
# Session 11, lead: the illegal memory access of the final sitting's shard 10
# (test_backend_group_budget_selection_matches_v3[tiny_llama-5] after 33 harness tests in the
# same process): A the shard's first 34 tests in one process, B the last two, C the failing
# one alone; then B under compute-sanitizer (names the kernel and address).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so
P="python3 -m pytest -q -p no:cacheprovider --tb=line -x"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && mkdir -p /root/build && xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
mapfile -t ids < docs/results/s11/jobs/repro_ids.txt
n=${#ids[@]}
( timeout 90 $P "${ids[@]}" > "$OUT/A_all34.log" 2>&1 ) &
( timeout 90 $P "${ids[$((n-2))]}" "${ids[$((n-1))]}" > "$OUT/B_last2.log" 2>&1 ) &
( timeout 90 $P "${ids[$((n-1))]}" > "$OUT/C_alone.log" 2>&1 ) &
wait
tail -n 3 "$OUT"/A_all34.log "$OUT"/B_last2.log "$OUT"/C_alone.log
timeout 150 compute-sanitizer --tool memcheck --print-limit 10 $P "${ids[@]:19}" > "$OUT/D_memcheck_19on.log" 2>&1
grep -m 12 -E "Invalid|at 0x|by thread|Address|kernel|passed|failed" "$OUT/D_memcheck_19on.log"
cd "$OUT" && tar czf /tmp/r.tgz . && rm -rf "$OUT"/* && mv /tmp/r.tgz "$OUT/"
