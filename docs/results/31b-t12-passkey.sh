# issue 12: passkey at 8K and 16K, 10 trials, full vs Tactic with the defaults (margin + output estimate)
cd /work/main; echo "library /tmp/frozen/lib-587d61b.so (587d61b); script $(git -C /work/main log --oneline -1 -- scripts/tactic_passkey.py)"; uptime
export TACTIC_LIB=/tmp/frozen/lib-587d61b.so
time python scripts/tactic_passkey.py --ctx 8192 16384 --trials 10
uptime
