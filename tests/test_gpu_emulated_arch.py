"""The paths workstation cards take, run on the GPU that is here.

The default build targets sm_80/86/89/90, but the GPU tests run on an H200 (sm_90), where
every block may opt in to 227 KB of shared memory and TMA copies and programmatic launch
exist. An A100 (sm_80) allows 163 KB a block, an RTX 3090 / 4090 (sm_86 / sm_89) 99 KB,
and neither has the sm_90 paths. TACTIC_CUDA_EMULATE=sm_80 | sm_86 | sm_89 caps the
limits the native dispatch reads (native/cuda/device_limits.cuh) at that card's, and any
kernel that would ask for more shared memory than it allows is a typed error instead of a
launch, so these runs fail wherever such a card would.

Each case runs existing twin tests in child processes under the cap (the cap is read once
a process; scripts/pytest_shards.py, as the GPU machine runs its suites): the GPU forward pass against the CPU, Tactic's step against its numpy twin,
and the CUDA backend with attention="tactic" (K-means on the GPU, pages, the step) at
head dims 64, 128 and 256, against full attention. The machine code is still the sm_90
build's; a compute_80 PTX build, JIT-compiled on the H200, runs sm_80's own device code
under the same caps (docs/results/s17/jobs/emu_3.sh).
GPU tests skip where no GPU is usable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytactic._native import lib

ROOT = Path(__file__).resolve().parent.parent

needs_gpu = pytest.mark.skipif(int(lib.tactic_cuda_device_count()) == 0,
                               reason="no usable CUDA GPU (nothing to emulate a card on)")

# Twin tests that cover every kernel whose shared memory or architecture path differs by card.
SUITES = {
    "forward": ["tests/test_gpu_forward.py", "-k",
                "random_weights_gpu_matches_cpu or decode_attention_kernels_match_cpu or prefill_in_chunks "
                "or truncate_and_graph_replay"],
    "prefill": ["tests/test_cuda_prefill_attention.py"],
    "tactic": ["tests/test_tactic_gpu.py", "-k",
               "backend or mma_attention_matches_reference or attend_variants or step_matches_twin "
               "or mass_target_matches_twin"],
}


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("suite", list(SUITES))
@pytest.mark.parametrize("card", ["sm_86", "sm_80"])
def test_twins_hold_on_emulated_card(card, suite, tmp_path):
    """The suite in 8 processes at once (scripts/pytest_shards.py), all under the card's caps."""
    env = dict(os.environ, TACTIC_CUDA_EMULATE=card)
    r = subprocess.run([sys.executable, "scripts/pytest_shards.py", "8", str(tmp_path / "shard_"), *SUITES[suite]],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    logs = "".join(p.read_text()[-3000:] for p in sorted(tmp_path.glob("shard_*.log")) if "FAILED" in p.read_text())
    assert r.returncode == 0, f"{suite} under TACTIC_CUDA_EMULATE={card}:\n{r.stdout[-3000:]}\n{logs}"
    assert "all passed" in r.stdout, r.stdout[-3000:]


# A prefill attention call through the test hook: the first thing it asks is the device's limits.
PREFILL_CALL = """
import numpy as np
from pytactic._native import check, ffi, lib
from pytactic.errors import InvalidArgumentError
q = np.zeros((8, 4, 64), np.float32)
K = np.zeros((2, 8, 64), np.float16)
V = np.zeros((2, 8, 64), np.float16)
out = np.zeros_like(q)
f = lambda a, t: ffi.cast(t, ffi.from_buffer(a))
try:
    check(lib.tactic_cuda_prefill_attention(f(q, "float *"), 8, 4, 2, 64, f(K, "uint16_t *"), f(V, "uint16_t *"),
                                            8, 0, 0, f(out, "float *")))
    print("ran")
except InvalidArgumentError as e:
    print("typed:", e)
"""


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("card,expect", [("sm_75", "typed:"), ("sm_86", "ran")])
def test_emulated_card_names(card, expect):
    """An unknown card is an InvalidArgumentError naming the variable, not a crash; a known one runs."""
    r = subprocess.run([sys.executable, "-c", PREFILL_CALL], cwd=ROOT, env=dict(os.environ, TACTIC_CUDA_EMULATE=card),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith(expect), r.stdout + r.stderr[-2000:]
    if expect == "typed:":
        assert "TACTIC_CUDA_EMULATE" in r.stdout
