# issue 12: multi-key needle, more documents (seeds 8 and 9) at 8K and 16K, 4 keys
cd /work/main; echo "library /tmp/frozen/lib-587d61b.so (587d61b)"; uptime
export TACTIC_LIB=/tmp/frozen/lib-587d61b.so
for s in 8 9; do time python scripts/tactic_tasks.py --ctx 8192 16384 --tasks multikey --seed $s --threads 2; done
uptime
