# IDLE (runner stops niced processes during this job)
# pytactic helper 'cpu' (issue 14): random Qwen2.5-0.5B shape, 32K context: pytactic full vs Tactic (forced 0.065)
D=/tmp/cpu-meas-d6a869e
cd $D && export TACTIC_LIB=$D/build/libtactic.so PYTHONPATH=$D
git -C /work/wt-cpu log --oneline -1 d6a869e; uptime
timeout 880 python scripts/bench_decode_depth.py --model /tmp/cpu_qwen05.gguf --ctx 32768 --gen 16 --fraction 0.065 --only pytactic --json /work/meas/done/cpu_qwen_32k_pytactic_d6a869e.json
uptime
