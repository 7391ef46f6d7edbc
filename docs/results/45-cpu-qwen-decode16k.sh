# IDLE (runner stops niced processes during this job)
# lead (issue 14): random Qwen2.5-0.5B shape, decode at 16K from the saved states: full, Tactic at forced 6.5% and 15%, llama-cpp-python
S=/tmp/snap-8e7928b; cd $S; export TACTIC_LIB=/tmp/frozen/lib-8e7928b.so PYTHONPATH=$S
echo "library 8e7928b (main); script scripts/bench_depth_states.py"; uptime
timeout 600 python scripts/bench_depth_states.py decode --model /tmp/cpu_qwen05.gguf --ctx 16384 --states /tmp/qs --gen 64 --fractions 0.065 0.15 --json /work/meas/done/45-qwen-decode16k.json
uptime
