# IDLE (runner stops niced processes during this job)
# lead (issue 14): random Qwen2.5-0.5B shape, 512 and 4K side by side on main 15a5b56 (job 22's command)
S=/tmp/snap-15a5b56; cd $S; export TACTIC_LIB=/tmp/frozen/lib-15a5b56.so PYTHONPATH=$S
echo "library 15a5b56 (main)"; uptime
timeout 480 python scripts/bench_core.py --model /tmp/cpu_qwen05.gguf --ctx 512 4096 --reps 1 --gen 16 --llama-fa on --json /work/meas/done/52-qwen-512-4k.json
uptime
