# IDLE (runner stops niced processes during this job)
# issue 14: Gemma 3 270M Q4_K_M, main at badafaf (prefetching decode tiles + keys-in-lanes decode attention) vs llama-cpp-python 0.3.36, 2 threads; 16K with 64 decode steps a side
cd /work/main; export TACTIC_LIB=/tmp/frozen/lib-badafaf.so
echo "library /tmp/frozen/lib-badafaf.so (badafaf)"; uptime; ps -eo ni,pcpu,args --sort=-pcpu | head -4 | cut -c1-150
timeout 600 python scripts/bench_core.py --ctx 512 4096 --reps 3 --llama-fa both --json /work/meas/done/cpu_gemma_512_4k_badafaf.json
uptime
timeout 700 python scripts/bench_decode_depth.py --ctx 16384 --gen 64 --fraction 0 --json /work/meas/done/cpu_gemma_16k_badafaf.json
uptime; ps -eo ni,pcpu,args --sort=-pcpu | head -4 | cut -c1-150
