# IDLE (runner stops niced processes during this job)
# helper cpu-s5 (issue 14): Gemma 3 270M Q4_K_M, cpu-s5 at d26074a (huge-page weight block, four-row short last group, L2 prefetch in the decode tiles) vs llama-cpp-python 0.3.36, 2 threads; commands of job 40
cd /work/wt-cpu; export TACTIC_LIB=/tmp/frozen/lib-d26074a.so PYTHONPATH=/work/wt-cpu
echo "library /tmp/frozen/lib-d26074a.so"; git -C /work/wt-cpu log --oneline -1; uptime; ps -eo ni,pcpu,args --sort=-pcpu | head -4 | cut -c1-150
timeout 600 python scripts/bench_core.py --ctx 512 4096 --reps 3 --llama-fa both --json /work/meas/done/cpu_gemma_512_4k_d26074a.json
uptime
timeout 700 python scripts/bench_decode_depth.py --ctx 16384 --gen 64 --fraction 0 --json /work/meas/done/cpu_gemma_16k_d26074a.json
uptime; ps -eo ni,pcpu,args --sort=-pcpu | head -4 | cut -c1-150
