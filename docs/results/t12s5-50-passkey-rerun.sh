# issue 12 (tactic-s5): passkey at 8K and 16K, 10 trials (job 31b's command), full vs Tactic (defaults),
# on the current library (branch tactic-s5 at 20dbf13 = main bbe6585 + debug hooks only). Quality, not timed.
cd /tmp/t12/src-20dbf13; echo "library /tmp/t12/lib-20dbf13.so ($(git -C /work/wt-tactic log --oneline -1 20dbf13))"; uptime
export TACTIC_LIB=/tmp/t12/lib-20dbf13.so
time python scripts/tactic_passkey.py --ctx 8192 16384 --trials 10
uptime
