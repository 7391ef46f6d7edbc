"""Slots: each holds one Model (its own KV cache) and one worker thread, because a
Model serves one thread at a time. A bounded queue waits for a free slot; a request
goes to the free slot whose cache shares the longest prefix with its prompt, so a new
question about the same document only evaluates the question.

The event loop never touches a busy slot's Model: the worker thread runs the whole
job and reports through Job.emit (thread-safe), and cancellation is a flag checked
in the token loop plus tactic_cancel for a prefill in progress."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import AsyncIterator, Callable, List, Optional, Sequence, Tuple

from .._native import lib
from .errors import overloaded, unavailable

TERMINAL = ("done", "error", "cancelled")


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n, limit = 0, min(len(a), len(b))
    while n < limit and a[n] == b[n]:
        n += 1
    return n


@dataclass
class Counters:
    """Totals since start, shown by /health."""

    requests: int = 0  # jobs run on a slot (generations and document reads)
    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens whose K/V a slot already held
    generated_tokens: int = 0
    completed: int = 0
    cancelled: int = 0
    rejected: int = 0  # 429: the queue was full
    timed_out: int = 0  # 503: waited longer than the queue timeout
    errors: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Job:
    """One request running on a slot. The worker emits (kind, data) events: "piece",
    "progress", then one terminal event: "done", "error" or "cancelled"."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._events: asyncio.Queue = asyncio.Queue()
        self._cancel = threading.Event()
        self.finished = asyncio.Event()  # the worker has returned and the slot is free
        self.slot: Optional["Slot"] = None
        self.outcome: Optional[Tuple[str, object]] = None  # the terminal event, for the counters

    # -- worker side (any thread) --
    def emit(self, kind: str, data=None) -> None:
        if kind in TERMINAL and self.outcome is None:
            self.outcome = (kind, data)
        self._loop.call_soon_threadsafe(self._events.put_nowait, (kind, data))

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    # -- event loop side --
    def cancel(self) -> None:
        """Stop the job: the token loop sees the flag; a prefill is cancelled natively
        (repeatedly, as tactic_cancel only affects an eval already running)."""
        if self._cancel.is_set():
            return
        self._cancel.set()
        if self.slot is not None and not self.finished.is_set():
            self._loop.create_task(self._interrupt(self.slot))

    async def _interrupt(self, slot: "Slot") -> None:
        while not self.finished.is_set():
            slot.interrupt()
            try:
                await asyncio.wait_for(self.finished.wait(), 0.05)
            except asyncio.TimeoutError:
                pass

    async def events(self) -> AsyncIterator[Tuple[str, object]]:
        while True:
            kind, data = await self._events.get()
            yield kind, data
            if kind in TERMINAL:
                return


class Slot:
    def __init__(self, index: int, model):
        self.index = index
        self.model = model
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"pytactic-slot{index}")
        self.busy = False
        self.cached: List[int] = []  # a copy of the model's cached tokens, taken when idle
        self.last_used = 0.0
        self.jobs = 0
        self.job: Optional[Job] = None  # the job running now, if any

    def interrupt(self) -> None:
        ctx = getattr(self.model, "_ctx", None)  # Model has no public cancel yet
        if ctx is not None:
            lib.tactic_cancel(ctx)  # thread-safe by the C API's contract

    def info(self) -> dict:
        return {"id": self.index, "busy": self.busy, "cached_tokens": len(self.cached), "jobs": self.jobs}


class SlotPool:
    """N slots and a wait queue of at most max_queue requests (then 429); a request
    that waits longer than queue_timeout seconds gets 503."""

    def __init__(self, models: Sequence, max_queue: int = 8, queue_timeout: float = 120.0):
        self.slots = [Slot(i, m) for i, m in enumerate(models)]
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self.waiting = 0
        self.counters = Counters()
        self.closing = False
        self._cond: Optional[asyncio.Condition] = None

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:  # bound to the running loop on first use
            self._cond = asyncio.Condition()
        return self._cond

    def _pick(self, ids: Sequence[int]) -> Optional[Slot]:
        free = [s for s in self.slots if not s.busy]
        if not free:
            return None
        # Longest shared prefix first; among equals the least recently used, so
        # a cache that another conversation may come back to survives longest.
        return max(free, key=lambda s: (common_prefix(s.cached, ids), -s.last_used))

    async def acquire(self, ids: Sequence[int]) -> Slot:
        if self.closing:
            raise unavailable("The server is shutting down.")
        cond = self._condition()
        async with cond:
            slot = self._pick(ids)
            if slot is None:
                if self.waiting >= self.max_queue:
                    self.counters.rejected += 1
                    raise overloaded(self.waiting)
                self.waiting += 1
                try:
                    await asyncio.wait_for(cond.wait_for(lambda: self._pick(ids) is not None or self.closing),
                                           self.queue_timeout)
                except asyncio.TimeoutError:
                    self.counters.timed_out += 1
                    raise unavailable(f"No slot became free within {self.queue_timeout:g} s.") from None
                finally:
                    self.waiting -= 1
                if self.closing:
                    raise unavailable("The server is shutting down.")
                slot = self._pick(ids)
            slot.busy = True
            return slot

    def start(self, slot: Slot, work: Callable, job: Job) -> None:
        """Run work(model, job) on the slot's thread; the slot is freed when it returns."""
        loop = asyncio.get_running_loop()
        job.slot = slot
        slot.job = job
        slot.jobs += 1
        self.counters.requests += 1

        def run():
            try:
                work(slot.model, job)
            except BaseException as e:  # the worker must always answer and free the slot
                job.emit("error", e)
            finally:
                loop.call_soon_threadsafe(self._release, slot, job)

        slot.executor.submit(run)

    def _release(self, slot: Slot, job: Job) -> None:
        slot.cached = slot.model.cached_tokens  # the worker is done: safe to read
        slot.last_used = time.monotonic()
        slot.busy = False
        slot.job = None
        self._account(job.outcome)
        job.finished.set()
        asyncio.get_running_loop().create_task(self._wake())

    def _account(self, outcome) -> None:
        c = self.counters
        kind, data = outcome or ("error", None)
        if hasattr(data, "n_prompt"):  # a generation's GenerationStats
            c.prompt_tokens += data.n_prompt
            c.cached_tokens += data.n_cached
            c.generated_tokens += data.n_generated
        elif isinstance(data, dict) and "cached" in data:  # a prefill's summary
            c.prompt_tokens += data["tokens"]
            c.cached_tokens += data["cached"]
        if kind == "done":
            c.completed += 1
        elif kind == "cancelled":
            c.cancelled += 1
        else:
            c.errors += 1

    async def _wake(self) -> None:
        cond = self._condition()
        async with cond:
            cond.notify_all()

    async def close(self) -> None:
        """Refuse new requests, stop the running ones, wait for the workers."""
        self.closing = True
        await self._wake()
        for s in self.slots:
            if s.job is not None:
                s.job.cancel()
        loop = asyncio.get_running_loop()
        for s in self.slots:
            await loop.run_in_executor(None, s.executor.shutdown, True)

    def info(self) -> dict:
        busy = sum(s.busy for s in self.slots)
        return {
            "slots_idle": len(self.slots) - busy, "slots_processing": busy,
            "queue_waiting": self.waiting, "queue_max": self.max_queue,
            "slots": [s.info() for s in self.slots],
            "counters": self.counters.as_dict(),
        }
