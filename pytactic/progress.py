"""A progress bar for reading a long prompt, on stderr: tokens done, tokens/s and the
time left. On a terminal it redraws one line; elsewhere it prints a line per quarter."""

from __future__ import annotations

import sys
import time


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class ProgressBar:
    """Call it as on_progress(done, total). Short prompts (< min_total) draw nothing."""

    def __init__(self, label: str = "reading", stream=None, width: int = 28, min_total: int = 256):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.min_total = min_total
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._t0 = None
        self._total = None
        self._quarter = -1

    def __call__(self, done: int, total: int) -> None:
        if total < self.min_total:
            return
        now = time.perf_counter()
        if self._t0 is None or total != self._total or done == 0:
            self._t0, self._total, self._quarter = now, total, -1
        elapsed = now - self._t0
        rate = done / elapsed if elapsed > 0 and done > 0 else 0.0
        left = (total - done) / rate if rate > 0 else 0.0
        filled = int(self.width * done / total) if total else self.width
        bar = "#" * filled + "-" * (self.width - filled)
        speed = f"{rate:,.0f} tok/s" if rate else "   -- tok/s"
        tail = f"{_clock(elapsed)} elapsed" if done >= total else f"{_clock(left)} left" if rate else "--:-- left"
        line = f"{self.label} [{bar}] {done:,}/{total:,} tokens  {speed}  {tail}"
        if self.tty:
            self.stream.write("\r\x1b[K" + line + ("\n" if done >= total else ""))
        else:
            quarter = 4 * done // total
            if quarter == self._quarter:
                return
            self._quarter = quarter
            self.stream.write(line + "\n")
        self.stream.flush()
        if done >= total:
            self._t0 = None
