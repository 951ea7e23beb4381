"""Health of a relay route, shared by every engine object of one service that uses the same credential:
a circuit breaker (a route that keeps failing is taken out for a cool-down) and the credential problem that
degrades readiness; and the per-credential cap on upstream requests in flight.

`RelayRuntime` holds them; `reelgate.resources` builds one per service and hands it to the relay engines,
so nothing lives at module level. The state is per process: in `reelgate serve` the API and its workers share
it; a standalone API replica learns of a failing upstream only from its own workers (docs/engines/relays.md).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class CircuitBreaker:
    """Closed -> open after `failures_to_open` failures in a row; open for `cooldown_s`, then half-open: the
    next call is let through, and its success closes the breaker while its failure opens it again."""

    def __init__(self, failures_to_open: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures_to_open = failures_to_open
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._lock = threading.Lock()

    def is_open(self) -> bool:
        with self._lock:
            return self._opened_at is not None and self._clock() - self._opened_at < self.cooldown_s

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            half_open = self._opened_at is not None and self._clock() - self._opened_at >= self.cooldown_s
            if self._failures >= self.failures_to_open or half_open:
                self._opened_at = self._clock()


@dataclass
class RouteHealth:
    breaker: CircuitBreaker
    # Set when the upstream refused our credentials (Kling 1000-1004, fal 401/403); cleared by a restart with
    # new settings, since nothing but the operator can fix it.
    auth_problem: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def mark_auth_problem(self, problem: str) -> None:
        with self._lock:
            self.auth_problem = problem


class RelayRuntime:
    """The relays' shared state of one service: route health by credential, and request slots by credential."""

    def __init__(self) -> None:
        self._health: dict[str, RouteHealth] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._lock = threading.Lock()

    def health(self, key: str, *, failures_to_open: int, cooldown_s: float) -> RouteHealth:
        with self._lock:
            health = self._health.get(key)
            if health is None:
                health = self._health[key] = RouteHealth(CircuitBreaker(failures_to_open, cooldown_s))
            return health

    def slots(self, fingerprint: str, size: int) -> asyncio.Semaphore:
        """The cap on upstream requests in flight for one credential, shared by every task of the service (its
        tasks all run on the service's one event loop)."""
        with self._lock:
            slots = self._slots.get(fingerprint)
            if slots is None:
                slots = self._slots[fingerprint] = asyncio.Semaphore(size)
            return slots
