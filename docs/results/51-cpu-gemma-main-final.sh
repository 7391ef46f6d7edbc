# IDLE (runner stops niced processes during this job)
# lead (issue 14): Gemma 3 270M side by side on main 15a5b56 (job 40/49's commands)
S=/tmp/snap-15a5b56; cd $S; export TACTIC_LIB=/tmp/frozen/lib-15a5b56.so PYTHONPATH=$S
echo "library 15a5b56 (main)"; uptime
timeout 420 python scripts/bench_core.py --ctx 512 4096 --reps 3 --llama-fa both --json /work/meas/done/51-gemma-512-4k.json
uptime
timeout 300 python scripts/bench_decode_depth.py --ctx 16384 --gen 64 --fraction 0 --json /work/meas/done/51-gemma-16k.json
uptime
