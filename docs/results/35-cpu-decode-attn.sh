# IDLE (runner stops niced processes during this job)
# issue 14 (helper cpu): keys-in-lanes decode attention + AVX-512 Tactic scoring (45ac2c3 = 22ce509 + main) vs main 53c6a5e, Gemma 3 270M, 2 threads
SRC=/tmp/cpuw/src-45ac2c3; BEFORE=/tmp/frozen/lib-53c6a5e.so; AFTER=/tmp/cpuw/frozen/lib-45ac2c3.so
cd $SRC; git -C /work/wt-cpu log --oneline -1 45ac2c3; uptime; ps -eo ni,pcpu,args --sort=-pcpu | head -5 | cut -c1-150
echo "== attention kernels: before (53c6a5e)"; TACTIC_LIB=$BEFORE timeout 120 python scripts/bench_attention_kernels.py --ctx 16384 --threads 2 --reps 3
echo "== attention kernels: after (45ac2c3)"; TACTIC_LIB=$AFTER timeout 180 python scripts/bench_attention_kernels.py --ctx 16384 --threads 2 --reps 3
echo "== Tactic decode attention alone at 16K (synthetic clustered keys), before"; TACTIC_LIB=$BEFORE timeout 150 python scripts/tactic_speed.py --n 16384 --threads 2 --iters 20
echo "== the same, after"; TACTIC_LIB=$AFTER timeout 150 python scripts/tactic_speed.py --n 16384 --threads 2 --iters 20
uptime
echo "== decode at 16K: before (53c6a5e), pytactic only"
TACTIC_LIB=$BEFORE timeout 240 python scripts/bench_decode_depth.py --ctx 16384 --gen 16 --fraction 0 --only pytactic --json /work/meas/done/cpu_decode16k_53c6a5e.json
echo "== decode at 16K: after (45ac2c3), with llama-cpp-python"
TACTIC_LIB=$AFTER timeout 480 python scripts/bench_decode_depth.py --ctx 16384 --gen 16 --fraction 0 --json /work/meas/done/cpu_decode16k_45ac2c3.json
uptime; ps -eo ni,pcpu,args --sort=-pcpu | head -5 | cut -c1-150
