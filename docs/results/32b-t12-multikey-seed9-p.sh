# issue 12: the one multi-key question where Tactic (P=0.9) missed a key full attention found (seed 9, 16K, question 2): P = 0.95 and 0.99
cd /work/main; echo "library /tmp/frozen/lib-587d61b.so (587d61b)"; uptime
export TACTIC_LIB=/tmp/frozen/lib-587d61b.so
for p in 0.95 0.99; do time python scripts/tactic_tasks.py --ctx 16384 --tasks multikey --seed 9 --threads 2 --p $p; done
uptime
