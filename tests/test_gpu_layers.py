"""n_gpu_layers (as llama.cpp's -ngl): the first N layers on the GPU, the embedding, the
other layers and the output head on the CPU (native/src/backend_split.cpp).

On a GPU: random-weight files of every architecture, teacher-forced through split
contexts (N = 0, 1, n_layer - 1, all) against the CPU path with test_gpu_forward.py's
margin rule and tolerances; chunked prefill, rewinds and the refusal of a context whose
GPU part does not fit. Everywhere (CI has no GPU): argument checks and what a context
without a usable GPU does with the option."""

import re

import numpy as np
import pytest

from pytactic._native import check, ffi, lib
from pytactic.errors import InvalidArgumentError, OutOfMemoryError, TacticError, UnsupportedModelError
from pytactic.lowlevel import NativeSession, new_context, load_model
from pytactic.model import Model

from test_gpu_forward import CPU, CUDA, MARGIN, PRESETS, TINY, TOL_MAX, compare, random_file_maker, top2_margin

HAVE_GPU = lib.tactic_cuda_device_count() > 0
needs_gpu = pytest.mark.skipif(not HAVE_GPU, reason="no usable CUDA device (driver or GPU missing)")
no_gpu = pytest.mark.skipif(HAVE_GPU, reason="a GPU is usable here (this checks the machine without one)")

N_LAYER = 3  # so that 1 and n_layer - 1 are different splits
SMALL = {**TINY, "n_layer": N_LAYER}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    get = random_file_maker(tmp_path_factory.mktemp("gpu_layers"), SMALL)
    return lambda arch, outtype="q8_0", **extra: get(arch, outtype, **extra)


def ids_for(seed, n):
    rng = np.random.default_rng(seed)
    return [1] + rng.integers(3, TINY["vocab"], n - 1).tolist()


def cpu_logits(path, ids, n_ctx=1024):
    with NativeSession(path, n_ctx=n_ctx, n_threads=0, attention=1, device=CPU) as s:
        return s.eval(ids, logits_all=True)


# -- on a GPU ------------------------------------------------------------------------------

@needs_gpu
@pytest.mark.parametrize("n_gpu", [0, 1, N_LAYER - 1, N_LAYER, -1])
@pytest.mark.parametrize("arch", sorted(PRESETS))
def test_split_matches_cpu_teacher_forced(files, arch, n_gpu):
    """A 200-token prefill, then 200 decode steps (the GPU part's decode graph replayed,
    across the 256-token bucket), against one CPU prefill of the same tokens."""
    path = files(arch)
    ids = ids_for(1, 400)
    cpu = cpu_logits(path, ids)
    with NativeSession(path, n_ctx=1024, attention=1, device=CUDA, n_gpu_layers=n_gpu) as s:
        assert lib.tactic_context_device(s.ctx) == (CPU if n_gpu == 0 else CUDA)
        got = [s.eval(ids[:200], logits_all=True)]
        for t in ids[200:]:
            got.append(s.eval([t]))
    compare(cpu, np.concatenate(got), f"{arch}/q8_0 n_gpu_layers={n_gpu}")


@needs_gpu
def test_split_k_quant_matches_cpu(files):
    """A K-quant file through a split (the GPU layers' dp4a matvec, the CPU's own)."""
    path = files("qwen3", "q4_k")
    ids = ids_for(5, 400)
    cpu = cpu_logits(path, ids)
    with NativeSession(path, n_ctx=1024, attention=1, device=CUDA, n_gpu_layers=1) as s:
        got = [s.eval(ids[:200], logits_all=True)] + [s.eval([t]) for t in ids[200:]]
    compare(cpu, np.concatenate(got), "qwen3/q4_k n_gpu_layers=1")


@needs_gpu
def test_split_prefill_in_chunks(files):
    """n_batch chunks through the split (later chunks attend to earlier ones in both
    caches) and more tokens than Gemma's window of 64."""
    path = files("gemma3")
    ids = ids_for(2, 400)
    cpu = cpu_logits(path, ids, n_ctx=512)
    with NativeSession(path, n_ctx=512, attention=1, device=CUDA, n_batch=96, n_gpu_layers=2) as s:
        got = s.eval(ids, logits_all=True)
    compare(cpu, got, "gemma3/q8_0 n_gpu_layers=2 in chunks of 96")


@needs_gpu
@pytest.mark.parametrize("arch", ["qwen3", "gemma3"])
def test_split_truncate_and_rewind(files, arch):
    """Prefix reuse on a split: a different continuation, a rewind, then the real one:
    the same logits as a fresh CPU pass (Gemma's CPU layers keep rings: the rewind may
    keep fewer tokens, n_past tells)."""
    path = files(arch)
    ids = ids_for(3, 300)
    cpu = cpu_logits(path, ids)
    with NativeSession(path, n_ctx=1024, attention=1, device=CUDA, n_gpu_layers=1) as s:
        s.eval(ids[:200] + [5] * 40)
        assert lib.tactic_context_truncate(s.ctx, 200) == 0
        keep = int(lib.tactic_context_n_past(s.ctx))
        assert 0 <= keep <= 200
        got = [s.eval(ids[keep:250], logits_all=True)] + [s.eval([t]) for t in ids[250:]]
    got = np.concatenate(got)
    ref = cpu[keep:]
    sure = top2_margin(ref) > MARGIN
    assert sure.sum() > 20, f"{arch}: too few confident steps to check"
    assert (got.argmax(-1) == ref.argmax(-1))[sure].all()
    rel = np.linalg.norm(got - ref, axis=-1) / np.linalg.norm(ref, axis=-1)
    assert rel.max() < TOL_MAX


@needs_gpu
def test_split_tactic_runs_on_both_devices(files):
    """attention=tactic on a split: GPU Tactic on the GPU layers, the CPU's on the
    others. A forced fraction of 1 attends every token, so the decode steps give full
    attention's logits (the CPU path's, by the margin rule)."""
    path = files("llama")
    ids = ids_for(7, 400)
    cpu = cpu_logits(path, ids)
    with NativeSession(path, n_ctx=1024, attention=2, device=CUDA, n_gpu_layers=1, tactic_force_fraction=1.0) as s:
        s.eval(ids[:300])
        got = np.concatenate([s.eval([t]) for t in ids[300:]])
    ref = cpu[300:]
    sure = top2_margin(ref) > MARGIN
    assert sure.sum() > 30, "too few confident steps to check"
    assert (got.argmax(-1) == ref.argmax(-1))[sure].all()
    rel = np.linalg.norm(got - ref, axis=-1) / np.linalg.norm(ref, axis=-1)
    assert rel.max() < TOL_MAX, rel.max()


def state_get(ctx):
    size = ffi.new("size_t *")
    check(lib.tactic_context_state_size(ctx, size))
    buf = ffi.new("uint8_t[]", size[0])
    check(lib.tactic_context_state_get(ctx, buf, size[0]))
    return bytes(ffi.buffer(buf, size[0]))


def state_set(ctx, blob):
    check(lib.tactic_context_state_set(ctx, blob, len(blob)))


@needs_gpu
@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_split_state_save_and_restore(files, arch):
    """The state blob is the same on every device: a CPU context's state restored into
    a split context, and a split context's into a CPU one, continue as one CPU pass."""
    path = files(arch)
    ids = ids_for(6, 300)
    cpu = cpu_logits(path, ids)
    with NativeSession(path, n_ctx=1024, n_threads=0, attention=1, device=CPU) as c, \
            NativeSession(path, n_ctx=1024, attention=1, device=CUDA, n_gpu_layers=2) as g:
        c.eval(ids[:150])
        state_set(g.ctx, state_get(c.ctx))              # CPU -> split
        got = [g.eval(ids[150:200], logits_all=True)] + [g.eval([t]) for t in ids[200:220]]
        state_set(c.ctx, state_get(g.ctx))              # split -> CPU
        assert lib.tactic_context_n_past(c.ctx) == 220
        got.append(c.eval(ids[220:], logits_all=True))
    got = np.concatenate(got)
    ref = cpu[150:]
    sure = top2_margin(ref) > MARGIN
    assert sure.sum() > 30, f"{arch}: too few confident steps to check"
    assert (got.argmax(-1) == ref.argmax(-1))[sure].all()
    rel = np.linalg.norm(got - ref, axis=-1) / np.linalg.norm(ref, axis=-1)
    assert rel.max() < TOL_MAX, rel.max()


@needs_gpu
def test_split_model_api_generates_as_the_cpu(files):
    """Model(n_gpu_layers=1): greedy text equals the CPU's on a confident file, and the
    attributes say where it runs."""
    path = files("llama")
    outs = {}
    for dev, ngl in (("cpu", -1), ("cuda", 1)):
        m = Model(path, n_ctx=256, device=dev, n_gpu_layers=ngl)
        try:
            assert (m.device, m.n_gpu_layers) == (("cpu", 0) if dev == "cpu" else ("cuda", 1))
            outs[dev] = m.generate([1, 7, 9, 11], max_tokens=24, temperature=0)
        finally:
            m.close()
    assert outs["cuda"] == outs["cpu"]


@needs_gpu
def test_split_memory_check_counts_the_gpu_layers_only(files):
    """A context too large for the GPU is refused before allocating, with numbers that
    count only the layers that go to the GPU (16 KV heads x 256 x 2^24 tokens x 4 bytes
    = 256 GiB a layer)."""
    path = files("llama", n_head=16, n_head_kv=16, head_dim=256)
    kv = {}
    for ngl in (1, -1):
        with pytest.raises(OutOfMemoryError, match="GPU memory") as e:
            Model(path, n_ctx=1 << 24, device="cuda", n_gpu_layers=ngl)
        kv[ngl] = float(re.search(r"KV cache ([0-9.]+) GiB", str(e.value)).group(1))
        if ngl == 1:
            assert "first 1 of 3 layers" in str(e.value)
    assert kv[1] == pytest.approx(256.0) and kv[-1] == pytest.approx(3 * 256.0)


# -- everywhere (no GPU needed) ------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(files):
    return files("llama")


@pytest.mark.parametrize("bad", [-2, -100, "3", 1.5, True, None])
def test_bad_n_gpu_layers_is_a_typed_error(tiny, bad):
    with pytest.raises(InvalidArgumentError, match="n_gpu_layers"):
        Model(tiny, n_ctx=64, device="cpu", n_gpu_layers=bad)


def test_native_checks_n_gpu_layers_too(tiny):
    m = load_model(tiny)
    with pytest.raises(TacticError, match="n_gpu_layers") as e:
        new_context(m, n_ctx=64, device=CPU, n_gpu_layers=-3)
    assert e.value.status == 1  # TACTIC_ERR_INVALID_ARGUMENT
    assert lib.tactic_context_default_params().n_gpu_layers == -1


def test_cpu_with_gpu_layers_says_it_ignores_them(tiny, capsys):
    m = Model(tiny, n_ctx=64, device="cpu", n_gpu_layers=2)
    try:
        assert (m.device, m.n_gpu_layers) == ("cpu", 0)
        assert m.generate([1, 5, 9], max_tokens=2, temperature=0) is not None
    finally:
        m.close()
    assert "n_gpu_layers=2 is ignored" in capsys.readouterr().err
    Model(tiny, n_ctx=64, device="cpu").close()  # the default (-1) says nothing
    assert "n_gpu_layers" not in capsys.readouterr().err


def test_zero_gpu_layers_is_a_cpu_context_on_any_machine(tiny):
    m = Model(tiny, n_ctx=64, device="cuda", n_gpu_layers=0)
    try:
        assert (m.device, m.n_gpu_layers) == ("cpu", 0)
    finally:
        m.close()


@no_gpu
def test_auto_without_a_gpu_runs_every_layer_on_the_cpu(tiny):
    m = Model(tiny, n_ctx=64, device="auto", n_gpu_layers=1)
    try:
        assert (m.device, m.n_gpu_layers) == ("cpu", 0)
    finally:
        m.close()


@no_gpu
def test_cuda_layers_without_a_gpu_is_a_clear_error(tiny):
    with pytest.raises(UnsupportedModelError, match="CUDA"):
        Model(tiny, n_ctx=64, device="cuda", n_gpu_layers=1)


def test_cli_takes_ngl():
    from pytactic.cli import _parser

    a = _parser().parse_args(["run", "m.gguf", "hi", "-ngl", "12"])
    assert a.n_gpu_layers == 12
    a = _parser().parse_args(["run", "m.gguf", "hi", "--n-gpu-layers", "0"])
    assert a.n_gpu_layers == 0
    assert _parser().parse_args(["run", "m.gguf", "hi"]).n_gpu_layers == -1
