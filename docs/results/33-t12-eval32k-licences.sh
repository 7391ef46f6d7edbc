# issue 12: selection quality at 30,000 tokens + 2,048 teacher-forced steps, licences
cd /work/main; echo "library /tmp/frozen/lib-587d61b.so (587d61b)"; uptime
export TACTIC_LIB=/tmp/frozen/lib-587d61b.so
time python scripts/tactic_eval.py --ctx 30000 --n-ctx 32768 --text licenses --sel-positions 2048 --debug-every 16 --threads 2 --tag _final32k
uptime
