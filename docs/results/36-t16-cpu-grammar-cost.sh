# IDLE (runner stops niced processes during this job)
# issue 16: JSON-schema cost on the CPU with the current code (warm matchers, faster sampler), Gemma 3 270M, 2 threads
cd /work/main; cp build/libtactic.so /tmp/frozen/lib-t16.so; export TACTIC_LIB=/tmp/frozen/lib-t16.so
echo "commit $(git log --oneline -1)"; uptime
timeout 600 python scripts/grammar_bench.py --threads 2 --repeats 5 --tokens 64 --breakdown
uptime
