# IDLE (runner stops niced processes during this job)
# issue 16: the same as 38 with more tokens and repetitions (38: 0.981 at 512, 0.942 at 4K: noisy)
cd /work/main; export TACTIC_LIB=/tmp/frozen/lib-t16b.so
echo "commit $(git log --oneline -1)"; uptime
timeout 700 python scripts/grammar_bench.py --threads 2 --repeats 15 --tokens 128
uptime
