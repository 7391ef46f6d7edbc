# IDLE (runner stops niced processes during this job)
# pytactic helper 'cpu' (issue 14): random Qwen2.5-0.5B-shape Q4_K_M (scripts/make_random_gguf.py --preset qwen2.5-0.5b --type q4_k_m), 2 threads
D=/tmp/cpu-meas-d6a869e
cd $D && export TACTIC_LIB=$D/build/libtactic.so PYTHONPATH=$D
git -C /work/wt-cpu log --oneline -1 d6a869e; uptime
timeout 400 python scripts/bench_core.py --model /tmp/cpu_qwen05.gguf --ctx 512 4096 --reps 1 --gen 16 --llama-fa on --json /work/meas/done/cpu_qwen_512_4k_d6a869e.json
uptime
timeout 480 python scripts/bench_decode_depth.py --model /tmp/cpu_qwen05.gguf --ctx 16384 --gen 16 --fraction 0.065 --json /work/meas/done/cpu_qwen_16k_d6a869e.json
uptime
