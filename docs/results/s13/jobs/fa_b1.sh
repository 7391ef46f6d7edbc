#!/usr/bin/env bash
# fa batch 1: the block-tile decode attention kernels 12-15 (tests, timing against kernel 8
# and SDPA, ncu of the split kernels alone at 128K).
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/../.."
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv | tee $OUT/gpu.txt
timeout 75 python3 scripts/pytest_shards.py 14 $OUT/tests_ tests/test_cuda.py tests/test_gpu_forward.py \
  -k "(attention_mma_matches or attention_mma_peaked or attention_mma_split_boundaries or decode_attention_kernels_match_cpu) and (k12 or k13 or k14 or k15)" \
  2>&1 | tee $OUT/tests.log
timeout 120 python3 scripts/gpu_bench.py --attention-only --models llama3-8b-like --attn-kernels 8 12 13 14 15 --no-eager \
  --contexts 16384 32768 65536 131072 --out $OUT/attn_b1.json 2>&1 | tee $OUT/bench.log
timeout 35 ncu --clock-control none -k regex:attn_decode --metrics \
  gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,dram__bytes_read.sum,launch__grid_size,launch__registers_per_thread,launch__occupancy_limit_shared_mem,sm__throughput.avg.pct_of_peak_sustained_elapsed,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum \
  python3 scripts/attn_probe.py 131072 8 12 13 15 > $OUT/ncu_131072.txt 2>&1
tail -5 $OUT/ncu_131072.txt
