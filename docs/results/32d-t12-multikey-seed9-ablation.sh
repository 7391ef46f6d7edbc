# issue 12: the seed-9 16K miss (question 2): Tactic P=0.9 without the output estimate, and without the margin
cd /work/main; echo "library /tmp/frozen/lib-587d61b.so (587d61b); script $(git log --oneline -1 -- scripts/tactic_tasks.py)"; uptime
export TACTIC_LIB=/tmp/frozen/lib-587d61b.so
time python scripts/tactic_tasks.py --ctx 8192 16384 --tasks multikey --seed 9 --threads 2 --p 0.9 --no-tail-values
uptime
