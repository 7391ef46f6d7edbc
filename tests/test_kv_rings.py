"""The KV cache's memory: sliding-window layers keep a ring of window + n_batch
positions, the cache is committed as it fills, and the runtime's accounting agrees
with sizes computed from the GGUF's metadata (read with the gguf package). Rings
give the same logits as keeping every position (swa_full, the flat layout)."""

import numpy as np
import pytest

from pytactic import Model
from pytactic._native import ffi, lib

N_THREADS = 2


def gguf_shape(path):
    import gguf

    r = gguf.GGUFReader(path)

    def val(key):
        f = r.fields[key]
        return int(f.parts[f.data[0]][0])

    arch = "gemma3"
    n_layer = val(f"{arch}.block_count")
    return dict(n_layer=n_layer, head_dim=val(f"{arch}.attention.key_length"),
                n_head_kv=val(f"{arch}.attention.head_count_kv"), window=val(f"{arch}.attention.sliding_window"))


def n_global(model, n_layer):
    out = ffi.new("uint8_t[]", n_layer)
    assert lib.tactic_model_global_layers(model._model, out, n_layer) == 0
    return sum(out)


def test_kv_bytes_at_32k_before_and_after_rings(gemma_path):
    s = gguf_shape(gemma_path)
    per_pos = 2 * s["n_head_kv"] * s["head_dim"] * 2  # K and V, f16
    with Model(gemma_path, n_ctx=32768, n_batch=512, n_threads=N_THREADS) as m:
        g = n_global(m, s["n_layer"])
        assert 0 < g < s["n_layer"]
        mem = m.kv_memory()
        assert mem["flat"] == per_pos * s["n_layer"] * 32768  # 576 MiB: every layer 32K positions
        assert mem["reserved"] == per_pos * (g * 32768 + (s["n_layer"] - g) * (s["window"] + 512))
        assert mem["committed"] == 0  # nothing written yet
        n = 700
        m.eval(list(range(1000, 1000 + n)))
        ring = s["window"] + 512
        assert m.kv_memory()["committed"] == per_pos * (g * n + (s["n_layer"] - g) * min(n, ring))
        m.reset()
        assert m.kv_memory()["committed"] == 0  # pages given back
    with Model(gemma_path, n_ctx=32768, n_threads=N_THREADS, swa_full=True) as m:
        assert m.kv_memory()["reserved"] == per_pos * s["n_layer"] * 32768


def test_rings_give_the_same_text_as_keeping_every_position(gemma_path):
    # n_batch 64: rings of 576 slots; a 900-token prompt wraps them in prefill and decode.
    text = " ".join(f"Item {i} is a {['red', 'green', 'blue'][i % 3]} box." for i in range(120))
    outs = []
    for swa_full in (True, False):
        with Model(gemma_path, n_ctx=2048, n_batch=64, n_threads=N_THREADS, swa_full=swa_full) as m:
            ids = m.tokenize(text + " Item 7 is a")
            assert len(ids) > 900
            m.eval(ids)
            logits = m.logits()
            outs.append((logits, m.generate(ids, 24, temperature=0)))
    (l_full, t_full), (l_ring, t_ring) = outs
    assert t_ring == t_full
    # Same keys read in the same order and tiles: bit-identical.
    np.testing.assert_array_equal(l_ring, l_full)


def test_truncate_keeps_fewer_when_the_rings_forgot_and_no_checkpoint_helps(gemma_path):
    with Model(gemma_path, n_ctx=2048, n_batch=64, n_threads=N_THREADS) as m:
        ids = list(range(2000, 2900))
        m.eval(ids)  # Model.eval takes no checkpoint
        m._truncate(800)  # the ring (576 slots) lost positions 289..: 800 needs 289..799
        assert m.n_past == 0 and m.cached_tokens == []
        m.eval(ids[:700])
        m.checkpoint()
        m.eval(ids[700:900])
        m._truncate(690)  # the checkpoint at 700 holds 690's window
        assert m.n_past == 690 and m.cached_tokens == ids[:690]
