#!/usr/bin/env bash
# Session 16, call 5: Nsight Compute on decode's matvec (v5, one launch each, no PDL overlap)
# for the 8B FFN shapes: Q4_K and Q5_K (weights straight into registers) against Q6_K and
# Q8_0 (v5s's cp.async tiles; Q8_0 reaches 80% of copy): where v5's time goes.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$(date +%s); say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /root/build; xz -dc .prebuilt/libtactic.so.xz > /root/build/libtactic.so
export PYTHONPATH=/tmp/site:$PWD TACTIC_LIB=/root/build/libtactic.so PYTHONUNBUFFERED=1
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
say "library $(cat .prebuilt/COMMIT); ncu: $NCU"
timeout 400 $NCU --clock-control none --section SpeedOfLight --section MemoryWorkloadAnalysis \
  --section MemoryWorkloadAnalysis_Tables --section WarpStateStats --section SchedulerStats --section Occupancy \
  --section LaunchStats -k regex:matvec_q8_v5 python3 scripts/gpu_profile_matvec.py Q4_K Q5_K Q6_K Q8_0 > "$OUT/ncu.txt" 2>&1
say "ncu rc $?"
grep -E "matvec_q8_v5|Duration|DRAM Throughput|L2 Cache Throughput|L1/TEX Cache Throughput|Memory Throughput|Compute \(SM\)|Issue Slots Busy|Achieved Occupancy|Registers Per|No Eligible|Active Warps Per|Eligible Warps|Warp Cycles Per Issued|Stall" "$OUT/ncu.txt" | cut -c1-150 | head -150
say end
