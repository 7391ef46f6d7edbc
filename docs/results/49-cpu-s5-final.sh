# IDLE (runner stops niced processes during this job)
# helper cpu-s5 (issue 14): final, library b7ef80b. (1) bench_matmul --threads 2 --quick, main bbe6585 vs b7ef80b alternating; (2) Gemma side by side with llama-cpp-python 0.3.36, the commands of job 40
cd /work/wt-cpu; export PYTHONPATH=/work/wt-cpu
git -C /work/wt-cpu log --oneline -1; uptime; ps -eo ni,pcpu,args --sort=-pcpu | head -4 | cut -c1-150
for i in 1 2; do
  for c in bbe6585 b7ef80b; do
    echo "== round $i library $c"
    TACTIC_LIB=/tmp/frozen/lib-$c.so timeout 100 python scripts/bench_matmul.py --threads 2 --quick | grep -E "avx512|decode"
  done
done
uptime
export TACTIC_LIB=/tmp/frozen/lib-b7ef80b.so; echo "library $TACTIC_LIB"
timeout 400 python scripts/bench_core.py --ctx 512 4096 --reps 3 --llama-fa both --json /work/meas/done/cpu_gemma_512_4k_b7ef80b.json
uptime
timeout 450 python scripts/bench_decode_depth.py --ctx 16384 --gen 64 --fraction 0 --json /work/meas/done/cpu_gemma_16k_b7ef80b.json
uptime; ps -eo ni,pcpu,args --sort=-pcpu | head -4 | cut -c1-150
