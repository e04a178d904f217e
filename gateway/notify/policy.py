"""Retry policy: exponential backoff with full jitter, ``Retry-After`` honoured, dead-letter
after ``max_attempts``."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 6
    base_s: float = 1.0
    max_s: float = 300.0

    def delay(
        self, attempts: int, retry_after_s: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Delay before attempt ``attempts + 1`` (``attempts`` ≥ 1 have failed): a random
        share between half and all of ``base · 2^(attempts-1)`` (capped), never less than
        the receiver's ``Retry-After``."""
        ceiling: float = min(self.max_s, self.base_s * 2 ** max(attempts - 1, 0))
        jittered: float = ceiling * (0.5 + 0.5 * (rng or random).random())
        if retry_after_s is not None:
            jittered = max(jittered, retry_after_s)
        return jittered

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts
