"""tactic_eval_async / tactic_synchronize: a decode step that returns once the device has
the work. The logits after it are the bytes tactic_eval gives for the same token, every
call that needs the step (logits, eval, truncate, timings) finishes it first, and a bad
token is refused before anything runs. On the CPU the step runs inside eval_async; the
CUDA case skips without a usable GPU."""

import numpy as np
import pytest

from pytactic._native import check, ffi, lib
from pytactic.errors import InvalidArgumentError
from pytactic.lowlevel import NativeSession, logits_rows

CPU, CUDA = 1, 2


DEVICES = [pytest.param(CPU, id="cpu"),
           pytest.param(CUDA, id="cuda", marks=pytest.mark.skipif(
               lib.tactic_cuda_device_count() == 0, reason="no usable CUDA device (driver or GPU missing)"))]


@pytest.mark.parametrize("device", DEVICES)
def test_async_steps_equal_sync_steps(gemma_path, device):
    prompt = [2, 818, 5279, 529, 7001, 563, 9079, 236761, 669, 5279]
    follow = [529, 1041, 563, 236743, 236770, 236771, 236832, 107, 818, 1217]
    with NativeSession(gemma_path, n_ctx=256, attention=1, device=device) as s:
        s.eval(prompt)
        want = [s.eval([t])[0] for t in follow]
        check(lib.tactic_context_truncate(s.ctx, len(prompt)))
        got = []
        for i, t in enumerate(follow):
            check(lib.tactic_eval_async(s.ctx, t))
            if i % 3 == 0:  # reading the logits finishes the step by itself
                got.append(np.frombuffer(ffi.buffer(lib.tactic_get_logits(s.ctx, -1), s.n_vocab * 4),
                                         dtype=np.float32).copy())
            else:
                check(lib.tactic_synchronize(s.ctx))
                got.append(logits_rows(s.ctx, s.n_vocab)[0])
            assert lib.tactic_context_n_past(s.ctx) == len(prompt) + i + 1
        for w, g in zip(want, got):
            assert np.array_equal(w, g)
        # a pending step is finished by truncate (and eval) before they act
        check(lib.tactic_eval_async(s.ctx, follow[0]))
        check(lib.tactic_context_truncate(s.ctx, len(prompt)))
        assert np.array_equal(s.eval([follow[0]])[0], want[0])
        # a bad token: refused, nothing pending, the cache unchanged
        n = lib.tactic_context_n_past(s.ctx)
        with pytest.raises(InvalidArgumentError, match="outside the vocabulary"):
            check(lib.tactic_eval_async(s.ctx, s.n_vocab + 5))
        check(lib.tactic_synchronize(s.ctx))
        assert lib.tactic_context_n_past(s.ctx) == n
