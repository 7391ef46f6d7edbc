# IDLE (runner stops niced processes during this job)
# pytactic helper 'cpu' (issue 14): Gemma decode, AVX2 vs AVX-512 path, 1 and 2 threads (pytactic only, ~1 min)
D=/tmp/cpu-meas-9b9aa6e
cd $D && export TACTIC_LIB=$D/build/libtactic.so PYTHONPATH=$D
git -C /work/wt-cpu log --oneline -1 9b9aa6e; uptime
for k in avx2 avx512; do for t in 1 2; do echo "TACTIC_KERNELS=$k threads=$t"; TACTIC_KERNELS=$k timeout 120 python scripts/bench_core.py --ctx 512 --reps 2 --gen 32 --threads $t --skip-llama | tail -1; done; done
uptime
