"""Token bytes to streamed text: whole UTF-8 characters only, and stop strings that
never leak into the output."""

from __future__ import annotations

from typing import Sequence


def complete_utf8_prefix(buf: bytes) -> int:
    """Length of the longest prefix of buf that does not end inside a UTF-8
    character that later bytes could still complete."""
    n = len(buf)
    for back in range(1, min(4, n) + 1):
        b = buf[n - back]
        if b & 0xC0 == 0x80:  # a continuation byte: look further back for its lead
            continue
        need = 2 if 0xC0 <= b < 0xE0 else 3 if 0xE0 <= b < 0xF0 else 4 if 0xF0 <= b < 0xF8 else 1
        return n - back if need > back else n
    return n


class TextAssembler:
    """Turns token bytes into text pieces: whole UTF-8 characters only, and never
    any text that might be the start of a stop string."""

    def __init__(self, stop: Sequence[str]):
        self.stop = [s for s in stop if s]
        self.pending = b""  # bytes of an unfinished character
        self.held = ""  # text that may be the start of a stop string
        self.stopped = False

    def push(self, data: bytes) -> str:
        self.pending += data
        cut = complete_utf8_prefix(self.pending)
        text, self.pending = self.pending[:cut].decode("utf-8", "replace"), self.pending[cut:]
        return self._release(text)

    def _release(self, text: str) -> str:
        if not self.stop:
            return text
        self.held += text
        first = min((i for i in (self.held.find(s) for s in self.stop) if i >= 0), default=-1)
        if first >= 0:
            out, self.held, self.stopped = self.held[:first], "", True
            return out
        # Keep back the longest tail that a stop string starts with.
        keep = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, len(self.held)), keep, -1):
                if self.held.endswith(s[:k]):
                    keep = k
                    break
        out = self.held[: len(self.held) - keep]
        self.held = self.held[len(self.held) - keep :]
        return out

    def flush(self) -> str:
        """The rest at the end of generation (an unfinished character becomes U+FFFD)."""
        text = self.pending.decode("utf-8", "replace")
        self.pending = b""
        out = self.held + text if not self.stopped else ""
        self.held = ""
        if self.stop and not self.stopped:
            for s in self.stop:  # the last bytes may have completed a stop string
                i = out.find(s)
                if i >= 0:
                    out, self.stopped = out[:i], True
        return out
