# IDLE (runner stops niced processes during this job)
# helper cpu-s5 (issue 14): python scripts/bench_matmul.py --threads 2 --quick, main bbe6585 vs cpu-s5 d26074a, alternating, 3 rounds
cd /work/wt-cpu; export PYTHONPATH=/work/wt-cpu
git -C /work/wt-cpu log --oneline -1; uptime
for i in 1 2 3; do
  for c in bbe6585 d26074a; do
    echo "== round $i library $c"
    TACTIC_LIB=/tmp/frozen/lib-$c.so timeout 120 python scripts/bench_matmul.py --threads 2 --quick | grep -E "avx512|decode"
  done
done
uptime
echo "== decode attention kernel (unchanged code; what limits it: in cache vs from memory, 1 vs 2 threads)"
TACTIC_LIB=/tmp/frozen/lib-d26074a.so timeout 200 python scripts/bench_attention_kernels.py --ctx 16384 --threads 2 --reps 3
TACTIC_LIB=/tmp/frozen/lib-d26074a.so timeout 200 python scripts/bench_attention_kernels.py --ctx 16384 --threads 1 --reps 3 | tail -4
uptime
