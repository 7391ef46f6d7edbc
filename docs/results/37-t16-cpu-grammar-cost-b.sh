# IDLE (runner stops niced processes during this job)
# issue 16: JSON-schema cost on the CPU again, more repetitions (36 had 4K faster than 512: a noisy machine)
cd /work/main; export TACTIC_LIB=/tmp/frozen/lib-t16.so
echo "commit $(git log --oneline -1)"; uptime
timeout 700 python scripts/grammar_bench.py --threads 2 --repeats 9 --tokens 64
uptime
