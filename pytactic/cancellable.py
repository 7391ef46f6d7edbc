"""Long native calls on a worker thread, so that Ctrl-C in the main thread can cancel
them natively and still leave the handle usable."""

from __future__ import annotations

import threading
from typing import Callable


def run_cancellable(call: Callable[[], int], cancel: Callable[[], None]) -> int:
    """Run call() (a native call that returns a status) on a worker thread. On Ctrl-C,
    cancel() is called until the call has stopped, then KeyboardInterrupt re-raised."""
    result = {}
    done = threading.Event()  # not Thread.join: an interrupted join can report a
    # running thread as finished (CPython 3.11), and the handle would still be busy

    def work():
        try:
            result["st"] = call()
        finally:
            done.set()

    threading.Thread(target=work, name="pytactic-eval", daemon=True).start()
    try:
        while not done.wait(0.05):
            pass
    except KeyboardInterrupt:
        cancel()
        while True:
            try:
                while not done.wait(0.05):
                    cancel()  # in case it had not begun yet
                break
            except KeyboardInterrupt:  # impatient second Ctrl-C: still wait
                continue
        raise
    return result["st"]
