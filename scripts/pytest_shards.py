"""Run a pytest selection as N processes at once (the GPU machine has 16 cores and one GPU;
pytest-xdist is not installed there): collect the test ids, deal them round-robin into N
shards, run one pytest per shard and print each shard's summary line.

usage: python3 scripts/pytest_shards.py N LOG_PREFIX [pytest arguments: files, -k ...]
Exit status: 0 when every shard passed (or skipped), 1 otherwise.
"""
import os
import signal
import subprocess
import sys


def main():
    n, prefix, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    base = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    listing = subprocess.run(base + ["--collect-only", "-q"] + args, capture_output=True, text=True)
    ids = [line for line in listing.stdout.splitlines() if "::" in line]
    if not ids:
        print(listing.stdout[-2000:], listing.stderr[-2000:])
        return 1
    shards = [ids[i::n] for i in range(n) if ids[i::n]]
    # One CPU thread a shard: N processes each spawning a thread per core (torch's K-means,
    # numpy) ran the Tactic tests 4x slower on the H200 machine (session 9: 224 s a shard
    # against 52 s).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    procs = []
    for i, shard in enumerate(shards):
        log = open(f"{prefix}{i}.log", "w")
        procs.append((subprocess.Popen(base + ["-q", "--tb=short", "-rfxs"] + shard, stdout=log,
                                       stderr=subprocess.STDOUT, env=env), log))
    def stop(signum, frame):  # a `timeout` around this script ends the shards too (they hold the GPU)
        for p, _ in procs:
            p.kill()
        sys.exit(124)

    signal.signal(signal.SIGTERM, stop)
    bad = 0
    for i, (p, log) in enumerate(procs):
        p.wait()
        log.close()
        lines = open(f"{prefix}{i}.log").read().splitlines()
        print(f"shard {i} ({len(shards[i])} tests): {lines[-1] if lines else 'no output'}")
        for line in lines:
            if line.startswith(("FAILED", "ERROR")):
                print("  " + line)
        bad |= p.returncode not in (0, 5)
    print(f"{len(ids)} tests in {len(shards)} shards: {'all passed' if not bad else 'FAILURES'}")
    return int(bad)


if __name__ == "__main__":
    sys.exit(main())
