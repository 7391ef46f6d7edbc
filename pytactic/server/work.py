"""What a slot's worker thread runs: a generation, or a prefill that reports its
progress (the web page's "reading the document"). Both emit events into a Job and
stop when the job is cancelled."""

from __future__ import annotations

from typing import List, Sequence

from ..errors import CancelledError as NativeCancelled
from .slots import Job, common_prefix

PREFILL_CHUNK = 256  # tokens per progress step when reading a document


def generation(ids: List[int], max_tokens, stop: List[str], sampling: dict):
    """work(model, job): stream text pieces, then "done" with the generation's stats."""

    def work(model, job: Job) -> None:
        pieces = model.generate(ids, max_tokens, stop=stop, stream=True, **sampling)
        try:
            for piece in pieces:  # one piece per token (UTF-8 held back until whole)
                if job.cancelled:
                    break
                job.emit("piece", piece)
        except NativeCancelled:  # the prefill was interrupted by Job.cancel
            pass
        finally:
            pieces.close()
        if job.cancelled:
            job.emit("cancelled", model.last_stats)
        else:
            job.emit("done", model.last_stats)

    return work


def _read_with_progress(model, ids: Sequence[int], on_progress, stopped) -> int:
    """Make the model's cache hold ids, reusing the longest cached prefix, calling
    on_progress(done, total) as the rest is read. Returns how many tokens were reused.

    Seam: where Model has eval_prefix(ids, on_progress=...) (the document-Q&A work),
    it does this (cancelled through tactic_cancel, which Job.cancel sends); until it
    lands, the rest is evaluated here in chunks through Model.eval."""
    eval_prefix = getattr(model, "eval_prefix", None)
    if eval_prefix is not None:
        total = len(ids)
        # Its callback counts the new tokens only; the page shows the whole prompt.
        return eval_prefix(list(ids), on_progress=lambda done, new: on_progress(done + total - new, total))
    cached = model.cached_tokens
    n = common_prefix(cached, ids)
    if n < len(cached):
        model._truncate(n)  # Model has no public truncate; this keeps its bookkeeping
    done = reused = len(model.cached_tokens)  # what the cache really kept
    total = len(ids)
    on_progress(done, total)
    while done < total:
        if stopped():
            raise NativeCancelled("reading cancelled")
        step = list(ids[done:done + PREFILL_CHUNK])
        model.eval(step)
        done += len(step)
        on_progress(done, total)
    return reused


def prefill(ids: List[int]):
    """work(model, job): put ids in the cache, emitting "progress" {done, total},
    then "done" {tokens, cached, seconds}."""

    def work(model, job: Job) -> None:
        import time

        t0 = time.perf_counter()
        try:
            reused = _read_with_progress(model, ids, lambda d, t: job.emit("progress", {"done": d, "total": t}),
                                         lambda: job.cancelled)
        except NativeCancelled:
            job.emit("cancelled", None)
            return
        job.emit("done", {"tokens": len(ids), "cached": reused, "seconds": round(time.perf_counter() - t0, 3)})

    return work
