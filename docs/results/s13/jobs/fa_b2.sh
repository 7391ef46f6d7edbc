#!/usr/bin/env bash
# fa batch 2: kernels 16 (TMA tiles, interleaved), 17 (15's copies only: an aid), 18 (TMA
# tiles, 2 stages, 3 blocks a multiprocessor), 19 and 20 (128-key K and V tiles one after the
# other, rings of 2 and 3 slots); split counts for 8, 15, 19; ncu of the split
# kernels alone and cuDNN's (per-SM active cycles min/avg/max: is there a tail?).
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/../.."
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv | tee $OUT/gpu.txt
timeout 50 python3 scripts/pytest_shards.py 14 $OUT/tests_ tests/test_cuda.py tests/test_gpu_forward.py \
  -k "(attention_mma_matches or attention_mma_peaked or attention_mma_split_boundaries or decode_attention_kernels_match_cpu) and (k16 or k18 or k19 or k20)" \
  2>&1 | tee $OUT/tests.log
timeout 45 python3 scripts/gpu_bench.py --attention-only --models llama3-8b-like --attn-kernels 8 15 16 17 18 19 20 --no-eager \
  --contexts 16384 32768 65536 131072 --out $OUT/attn_b2.json 2>&1 | tee $OUT/bench.log
timeout 35 python3 scripts/gpu_bench.py --attention-only --models llama3-8b-like --attn-kernels 8 15 19 --splits 0 24 32 66 --no-eager \
  --contexts 32768 131072 --out $OUT/attn_b2_splits.json 2>&1 | tee $OUT/bench_splits.log
M=gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,dram__bytes_read.sum,launch__grid_size,launch__registers_per_thread,launch__occupancy_limit_shared_mem,launch__occupancy_limit_registers,sm__cycles_active.min,sm__cycles_active.avg,sm__cycles_active.max,sm__cycles_elapsed.max
for n in 131072 32768; do
  timeout 50 ncu --clock-control none -k regex:"attn_decode|fort_native" --metrics $M \
    python3 scripts/attn_probe.py $n 8 15 17 18 19 20 > $OUT/ncu_$n.txt 2>&1
  grep -E "attn_decode|fort_native|gpu__time|dram__thr|cycles_active" $OUT/ncu_$n.txt | grep -v PROF | head -60
done
