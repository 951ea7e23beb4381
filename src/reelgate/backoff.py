"""The one way reelgate says "later": a delay that grows by a factor after each failure, up to a cap.

Task retries, callback retries, relay retries and relay status polls each hold a `Backoff` with their own
numbers; none of them computes a delay by hand.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    first_s: float
    factor: float = 2.0
    max_s: float = float("inf")

    def __post_init__(self) -> None:
        if self.first_s < 0 or self.factor < 1 or self.max_s < self.first_s:
            raise ValueError(f"not a backoff: {self}")

    def delay_s(self, failures: int) -> float:
        """How long to wait after the `failures`-th failure in a row (1 = the first)."""
        if failures < 1:
            return 0.0
        return min(self.max_s, self.first_s * self.factor ** (failures - 1))

    def after(self, delay_s: float) -> float:
        """The wait that follows a wait of `delay_s` (for loops that keep their current delay)."""
        return min(self.max_s, max(self.first_s, delay_s * self.factor))
