# IDLE (runner stops niced processes during this job)
# helper cpu-s5 (issue 14): Gemma decode at 16K, pytactic only: knob A/B in one process (library d26074a), then bench_decode_depth old (bbe6585) vs new (d26074a)
cd /work/wt-cpu; export PYTHONPATH=/work/wt-cpu
git -C /work/wt-cpu log --oneline -1; uptime
TACTIC_LIB=/tmp/frozen/lib-d26074a.so timeout 240 python scripts/bench_decode_ab.py --ctx 16384 --steps 32 --rounds 4
uptime
for c in bbe6585 d26074a; do
  echo "== library $c"
  TACTIC_LIB=/tmp/frozen/lib-$c.so timeout 150 python scripts/bench_decode_depth.py --ctx 16384 --gen 64 --fraction 0 --only pytactic
done
uptime
