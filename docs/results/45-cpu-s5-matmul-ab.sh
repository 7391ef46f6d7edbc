# IDLE (runner stops niced processes during this job)
# helper cpu-s5 (issue 14): decode matmuls, main bbe6585 vs 3368e12 (huge-page weight block + four-row short last group), alternating; then the knobs again
cd /work/wt-cpu; export PYTHONPATH=/work/wt-cpu
git -C /work/wt-cpu log --oneline -1; uptime
for i in 1 2 3; do
  for c in bbe6585 3368e12; do
    echo "== round $i library $c"
    TACTIC_LIB=/tmp/frozen/lib-$c.so timeout 120 python scripts/bench_matmul.py --threads 2 --quick | grep -E "avx512|decode"
  done
done
uptime
TACTIC_LIB=/tmp/frozen/lib-3368e12.so timeout 300 python scripts/bench_decode_matvec.py --threads 2 --rounds 4 --iters 20 --shapes output
uptime
