# IDLE (runner stops niced processes during this job)
# lead (issue 14): random Qwen2.5-0.5B shape, pytactic's 16K prefill timed, state saved for the decode job
S=/tmp/snap-8e7928b; cd $S; export TACTIC_LIB=/tmp/frozen/lib-8e7928b.so PYTHONPATH=$S
echo "library 8e7928b (main); script scripts/bench_depth_states.py"; uptime
M=/tmp/cpu_qwen05.gguf
timeout 420 python scripts/bench_depth_states.py fill --side pytactic --model $M --ctx 16384 --out /tmp/qs/pyt_16384.bin --json /work/meas/done/42-fill-pyt16k.json
uptime; ls -la /tmp/qs
