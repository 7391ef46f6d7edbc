#!/usr/bin/env bash
# Fuzzes the GGUF reader, the model binder and the tokenizer loader with libFuzzer
# (ASan + UBSan), seeded with hand-made files and seeds cut from the real model.
#
#   scripts/fuzz_gguf.sh [SECONDS=600] [extra libFuzzer flags...]
#
# Runs niced and with one job (the machine is shared). The growing corpus lives in
# build-fuzz/corpus; crashes land in build-fuzz/artifacts. Inputs worth keeping as
# regression tests go to tests/data/fuzz_corpus/ (tests/test_hardening.py loads each).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
shift || true
B=build-fuzz
if [ ! -x $B/fuzz_gguf ] || [ -n "$(find native/src native/fuzz -newer $B/fuzz_gguf -name '*.[ch]*' | head -1)" ]; then
  CC=clang CXX=clang++ cmake -B $B -G Ninja -DTACTIC_FUZZ=ON -DTACTIC_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  nice -n 19 cmake --build $B -j2 --target fuzz_gguf
fi
mkdir -p $B/corpus $B/seeds $B/artifacts
real=${TACTIC_TEST_MODEL:-/root/models/gemma-3-270m-q4_k_m.gguf}
python3 native/fuzz/make_seeds.py $B/seeds $([ -f "$real" ] && echo "$real") >/dev/null
cp -n tests/data/fuzz_corpus/* $B/seeds/ 2>/dev/null || true
# rss/malloc limits: a 64 KB input must never make the reader allocate gigabytes.
ASAN_OPTIONS=allocator_may_return_null=0:detect_leaks=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
nice -n 19 $B/fuzz_gguf -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
  -malloc_limit_mb=1024 -max_len=65536 -dict=native/fuzz/gguf.dict -artifact_prefix=$B/artifacts/ \
  -print_final_stats=1 "$@" $B/corpus $B/seeds
