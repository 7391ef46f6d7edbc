# IDLE (runner stops niced processes during this job)
# pytactic helper 'cpu' (issue 14): per-core kernel table scalar / AVX2 / AVX-512
D=/tmp/cpu-meas-9b9aa6e
cd $D && export TACTIC_LIB=$D/build/libtactic.so PYTHONPATH=$D
git -C /work/wt-cpu log --oneline -1 9b9aa6e; uptime
timeout 600 python scripts/bench_matmul.py --all-types --threads 1
uptime
