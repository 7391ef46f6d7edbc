# issue 12: the document of 31c (seed 9, 8K then 16K) where Tactic at P=0.9 missed question 2 at 16K: again at P=0.9 and at P=0.95
cd /work/main; echo "library /tmp/frozen/lib-587d61b.so (587d61b)"; uptime
export TACTIC_LIB=/tmp/frozen/lib-587d61b.so
for p in 0.9 0.95; do time python scripts/tactic_tasks.py --ctx 8192 16384 --tasks multikey --seed 9 --threads 2 --p $p; done
uptime
