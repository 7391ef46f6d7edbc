# IDLE (runner stops niced processes during this job)
# helper cpu-s5 (issue 14): what limits the decode matvecs: prefetch distance/hint, huge pages, vs a streaming read (library 6e53d8e)
cd /work/wt-cpu; export TACTIC_LIB=/tmp/frozen/lib-6e53d8e.so PYTHONPATH=/work/wt-cpu
echo "library /tmp/frozen/lib-6e53d8e.so"; git -C /work/wt-cpu log --oneline -1; uptime
timeout 420 python scripts/bench_decode_matvec.py --threads 2 --rounds 2 --iters 20
uptime
