# IDLE (runner stops niced processes during this job)
# helper cpu-s5 (issue 14): decode matmul throughput before any change (main bbe6585), 2 threads and 1 thread
cd /work/wt-cpu; export TACTIC_LIB=/tmp/frozen/lib-bbe6585.so
echo "library /tmp/frozen/lib-bbe6585.so"; git -C /work/wt-cpu log --oneline -1; uptime
timeout 200 python scripts/bench_matmul.py --threads 2 --quick
uptime
timeout 200 python scripts/bench_matmul.py --threads 1 --quick
uptime
