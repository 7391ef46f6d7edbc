# IDLE (runner stops niced processes during this job)
# issue 14 (re-run; 31a and 31d were disturbed by the lead's runs): Gemma 3 270M Q4_K_M, pytactic (53c6a5e: prefetching decode tiles) vs llama-cpp-python, 2 threads
cd /work/main; export TACTIC_LIB=/tmp/frozen/lib-53c6a5e.so
echo "library /tmp/frozen/lib-53c6a5e.so (53c6a5e)"; uptime; ps -eo ni,pcpu,args --sort=-pcpu | head -6 | cut -c1-150
timeout 600 python scripts/bench_core.py --ctx 512 4096 --reps 3 --llama-fa both --json /work/meas/done/cpu_gemma_512_4k_53c6a5e.json
uptime
timeout 600 python scripts/bench_decode_depth.py --ctx 16384 --gen 16 --fraction 0 --json /work/meas/done/cpu_gemma_16k_53c6a5e.json
uptime; ps -eo ni,pcpu,args --sort=-pcpu | head -6 | cut -c1-150
