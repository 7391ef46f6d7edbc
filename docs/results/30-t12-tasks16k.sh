# issue 12: multi-key needle and aggregation at 16K, full vs Tactic (defaults) vs Quest
cd /work/main; echo "library /tmp/frozen/lib-587d61b.so (587d61b)"; uptime
export TACTIC_LIB=/tmp/frozen/lib-587d61b.so
time python scripts/tactic_tasks.py --ctx 16384 --threads 2
uptime
