# issue 11/12: the CPU's Tactic vs full at 16K through the public API (KL over 512 teacher-forced
# positions, decode tok/s), the reference for the same script on the GPU. Passkey on the CPU: job 31b.
cd /work/main; export TACTIC_LIB=/tmp/frozen/lib-53c6a5e.so
echo "library /tmp/frozen/lib-53c6a5e.so (53c6a5e); script $(git log --oneline -1 -- scripts/tactic_device_quality.py)"; uptime
time python scripts/tactic_device_quality.py --device cpu --ctx 16384 --kl-steps 512 --trials 0 --speed-steps 128 --threads 2 --json /work/meas/done/tactic_quality_cpu16k.json
uptime
