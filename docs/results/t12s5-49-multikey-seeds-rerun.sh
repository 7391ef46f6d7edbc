# issue 12 (tactic-s5): multi-key needle, seeds 8 and 9 at 8K and 16K, 4 keys (job 31c's command) on the
# current library (branch tactic-s5 at 20dbf13 = main bbe6585 + debug hooks only; selection unchanged).
# Quality numbers (not timed); queued so the 4 prefills run at normal priority.
cd /tmp/t12/src-20dbf13; echo "library /tmp/t12/lib-20dbf13.so ($(git -C /work/wt-tactic log --oneline -1 20dbf13))"; uptime
export TACTIC_LIB=/tmp/t12/lib-20dbf13.so
for s in 8 9; do time python scripts/tactic_tasks.py --ctx 8192 16384 --tasks multikey --seed $s --threads 2; done
uptime
