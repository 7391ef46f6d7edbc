# IDLE (runner stops niced processes during this job)
# issue 16: JSON-schema cost on the CPU with the mask computed before sampling when no core is spare (2 threads, 2 cores)
cd /work/main; export TACTIC_LIB=/tmp/frozen/lib-t16b.so
echo "commit $(git log --oneline -1)"; uptime
timeout 700 python scripts/grammar_bench.py --threads 2 --repeats 9 --tokens 64
uptime
