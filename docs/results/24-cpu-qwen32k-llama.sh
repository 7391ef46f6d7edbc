# IDLE (runner stops niced processes during this job)
# pytactic helper 'cpu' (issue 14): random Qwen2.5-0.5B shape, 32K context: llama-cpp-python 0.3.36 (FA on)
D=/tmp/cpu-meas-d6a869e
cd $D && export TACTIC_LIB=$D/build/libtactic.so PYTHONPATH=$D
git -C /work/wt-cpu log --oneline -1 d6a869e; uptime
timeout 870 python scripts/bench_decode_depth.py --model /tmp/cpu_qwen05.gguf --ctx 32768 --gen 8 --fraction 0.065 --only llama --json /work/meas/done/cpu_qwen_32k_llama_d6a869e.json
uptime
