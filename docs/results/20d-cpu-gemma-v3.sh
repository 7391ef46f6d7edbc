# IDLE (runner stops niced processes during this job)
# pytactic helper 'cpu' (issue 14): Gemma 3 270M Q4_K_M, pytactic vs llama-cpp-python 0.3.36, 2 threads (commit d6a869e)
D=/tmp/cpu-meas-d6a869e
cd $D && export TACTIC_LIB=$D/build/libtactic.so PYTHONPATH=$D
git -C /work/wt-cpu log --oneline -1 d6a869e; uptime; ps -eo ni,pcpu,args --sort=-pcpu | head -6 | cut -c1-150
timeout 420 python scripts/bench_core.py --ctx 512 4096 --reps 2 --llama-fa both --json /work/meas/done/cpu_gemma_512_4k_d6a869e.json
uptime
# 16K: one prefill a side; decode full, Tactic (its own P = 0.9 selection: fraction 0) and llama.cpp
timeout 480 python scripts/bench_decode_depth.py --ctx 16384 --gen 16 --fraction 0 --json /work/meas/done/cpu_gemma_16k_d6a869e.json
uptime; ps -eo ni,pcpu,args --sort=-pcpu | head -6 | cut -c1-150
# each kernel path end to end, pytactic alone (512 tokens, 2 threads)
for k in avx2 avx512; do echo "TACTIC_KERNELS=$k threads=2"; TACTIC_KERNELS=$k timeout 120 python scripts/bench_core.py --ctx 512 --reps 2 --gen 32 --threads 2 --skip-llama | tail -1; done
uptime
# per-core kernel table (scalar / AVX2 / AVX-512), 1 thread
timeout 300 python scripts/bench_matmul.py --all-types --threads 1
uptime
