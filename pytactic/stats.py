"""What the last generation did: token counts, times and why it ended."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class GenerationStats:
    n_prompt: int = 0  # prompt tokens
    n_cached: int = 0  # of which reused from the KV cache (Python's bookkeeping)
    n_evaluated: int = 0  # prompt tokens the native context evaluated (its own counter)
    n_generated: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    finish_reason: Optional[str] = None  # "stop" | "length" | None (interrupted)
    tokens: List[int] = field(default_factory=list)
    # Tactic: mean share of the cached tokens attended per global-layer query head over the
    # decode steps of this generation that used Tactic (None: no Tactic step ran).
    tactic_attended_share: Optional[float] = None

    @property
    def decode_tokens_per_s(self) -> float:
        return self.n_generated / self.decode_s if self.decode_s > 0 else 0.0

    @property
    def prefill_tokens_per_s(self) -> float:
        n = self.n_prompt - self.n_cached
        return n / self.prefill_s if self.prefill_s > 0 else 0.0
