"""Health of a relay route (provider + credential): a circuit breaker (a route that keeps failing is taken
out for a cool-down) and the credential problem that degrades readiness; and the per-credential cap on
upstream requests in flight.

The health is shared by every process through a `HealthStore` (the database's `upstream_health` table, or
Redis when REELGATE_REDIS_URL is set), so one replica that finds an upstream failing takes it out for all,
and all see it recover. Each process keeps a view of the store, refreshed every second by
`RelayRuntime.run`, because availability is asked on every create and must not cost a round trip; a change
this process makes is in its view at once and in the store right after (written in the background, since the
relay code that observes it is in the middle of an upstream call).

`RelayRuntime` holds the view, the store and the slots; `reelgate.resources` builds one per service and
hands it to the relay engines, so nothing lives at module level.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

log = logging.getLogger(__name__)

REFRESH_S = 1.0


@dataclass(frozen=True)
class HealthState:
    """One route's shared health. Times are unix seconds: every process compares them."""

    failures: int = 0
    opened_at: float | None = None
    # Set when the upstream refused our credentials (Kling 1000-1004, fal 401/403); cleared when a process
    # starts with those credentials again (the operator's fix), since nothing but the operator can fix it.
    auth_problem: str | None = None


# --- the breaker's rules, on a HealthState -----------------------------------------------------------------


def is_open(state: HealthState, *, now: float, cooldown_s: float) -> bool:
    return state.opened_at is not None and now - state.opened_at < cooldown_s


def after_failure(state: HealthState, *, now: float, failures_to_open: int, cooldown_s: float) -> HealthState:
    """Closed -> open after `failures_to_open` failures in a row; once the cool-down is over (half-open), the
    next call is let through, and its failure opens the breaker again at once."""
    failures = state.failures + 1
    half_open = state.opened_at is not None and now - state.opened_at >= cooldown_s
    opened_at = now if failures >= failures_to_open or half_open else state.opened_at
    return replace(state, failures=failures, opened_at=opened_at)


def after_success(state: HealthState) -> HealthState:
    return replace(state, failures=0, opened_at=None)


class CircuitBreaker:
    """The breaker's rules on a state of its own, with an injectable clock (one process, or a unit test)."""

    def __init__(self, failures_to_open: int, cooldown_s: float, clock: Callable[[], float] = time.time) -> None:
        self.failures_to_open = failures_to_open
        self.cooldown_s = cooldown_s
        self._clock = clock
        self.state = HealthState()

    def is_open(self) -> bool:
        return is_open(self.state, now=self._clock(), cooldown_s=self.cooldown_s)

    def record_success(self) -> None:
        self.state = after_success(self.state)

    def record_failure(self) -> None:
        self.state = after_failure(
            self.state, now=self._clock(), failures_to_open=self.failures_to_open, cooldown_s=self.cooldown_s
        )


# --- where the health is kept ------------------------------------------------------------------------------


class HealthStore(Protocol):
    """Every change is one atomic read-modify-write of one route's state, whatever the number of processes."""

    async def read_all(self) -> dict[str, HealthState]: ...

    async def record_failure(self, key: str, *, now: float, failures_to_open: int, cooldown_s: float) -> None: ...

    async def record_success(self, key: str, *, now: float) -> None: ...

    async def mark_auth_problem(self, key: str, problem: str, *, now: float) -> None: ...

    async def clear_auth_problems(self, keys: Iterable[str], *, now: float) -> None: ...

    async def aclose(self) -> None: ...


class MemoryHealthStore:
    """One process only: `reelgate generate` and unit tests."""

    def __init__(self) -> None:
        self._states: dict[str, HealthState] = {}

    async def read_all(self) -> dict[str, HealthState]:
        return dict(self._states)

    async def record_failure(self, key: str, *, now: float, failures_to_open: int, cooldown_s: float) -> None:
        state = self._states.get(key, HealthState())
        self._states[key] = after_failure(state, now=now, failures_to_open=failures_to_open, cooldown_s=cooldown_s)

    async def record_success(self, key: str, *, now: float) -> None:
        self._states[key] = after_success(self._states.get(key, HealthState()))

    async def mark_auth_problem(self, key: str, problem: str, *, now: float) -> None:
        self._states[key] = replace(self._states.get(key, HealthState()), auth_problem=problem)

    async def clear_auth_problems(self, keys: Iterable[str], *, now: float) -> None:
        for key in keys:
            if key in self._states:
                self._states[key] = replace(self._states[key], auth_problem=None)

    async def aclose(self) -> None:
        return None


# --- one route, and the runtime of a service ---------------------------------------------------------------


class RouteHealth:
    """One route's health as a relay engine sees it: read from the service's view, changed in the store."""

    def __init__(self, runtime: RelayRuntime, key: str, *, failures_to_open: int, cooldown_s: float) -> None:
        self.runtime = runtime
        self.key = key
        self.failures_to_open = failures_to_open
        self.cooldown_s = cooldown_s

    @property
    def state(self) -> HealthState:
        return self.runtime.state(self.key)

    def is_open(self) -> bool:
        return is_open(self.state, now=time.time(), cooldown_s=self.cooldown_s)

    @property
    def auth_problem(self) -> str | None:
        return self.state.auth_problem

    def record_failure(self) -> None:
        now = time.time()
        self.runtime.change(
            self.key,
            after_failure(self.state, now=now, failures_to_open=self.failures_to_open, cooldown_s=self.cooldown_s),
            self.runtime.store.record_failure(
                self.key, now=now, failures_to_open=self.failures_to_open, cooldown_s=self.cooldown_s
            ),
        )

    def record_success(self) -> None:
        if self.state.failures == 0 and self.state.opened_at is None:
            return  # nothing to tell: a healthy route's successes cost no writes
        write = self.runtime.store.record_success(self.key, now=time.time())
        self.runtime.change(self.key, after_success(self.state), write)

    def mark_auth_problem(self, problem: str) -> None:
        self.runtime.change(
            self.key,
            replace(self.state, auth_problem=problem),
            self.runtime.store.mark_auth_problem(self.key, problem, now=time.time()),
        )


class RelayRuntime:
    """The relays' shared state of one service: the view of route health (and the store behind it), and the
    request slots per credential."""

    def __init__(self, store: HealthStore | None = None, *, refresh_s: float = REFRESH_S) -> None:
        self.store: HealthStore = store if store is not None else MemoryHealthStore()
        self.refresh_s = refresh_s
        self._view: dict[str, HealthState] = {}
        self._routes: dict[str, RouteHealth] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._writes: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()

    def health(self, key: str, *, failures_to_open: int, cooldown_s: float) -> RouteHealth:
        with self._lock:
            route = self._routes.get(key)
            if route is None:
                route = self._routes[key] = RouteHealth(
                    self, key, failures_to_open=failures_to_open, cooldown_s=cooldown_s
                )
            return route

    def slots(self, fingerprint: str, size: int) -> asyncio.Semaphore:
        """The cap on upstream requests in flight for one credential, shared by every task of the service (its
        tasks all run on the service's one event loop)."""
        with self._lock:
            slots = self._slots.get(fingerprint)
            if slots is None:
                slots = self._slots[fingerprint] = asyncio.Semaphore(size)
            return slots

    def state(self, key: str) -> HealthState:
        with self._lock:
            return self._view.get(key, HealthState())

    def change(self, key: str, seen_here: HealthState, write: Coroutine[Any, Any, None]) -> None:
        """Show `seen_here` in this process at once, and apply the same change to the store in the background
        (the next refresh brings back the store's word, which the other processes share)."""
        with self._lock:
            self._view[key] = seen_here
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside any event loop (a unit test of a single process)
            asyncio.run(write)
            return
        task = loop.create_task(write)
        self._writes.add(task)
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and (problem := task.exception()) is not None:
            log.warning("could not share a relay route's health; this process still acts on it", exc_info=problem)

    async def start(self) -> None:
        """A process starting with these credentials clears the credential problems recorded for them (the
        operator's restart is the fix), then reads the shared state."""
        with self._lock:
            keys = list(self._routes)
        await self.store.clear_auth_problems(keys, now=time.time())
        await self.refresh()

    async def refresh(self) -> None:
        shared = await self.store.read_all()
        with self._lock:
            self._view = shared

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the view fresh until `stop`; a store that cannot be read leaves the last view in force."""
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception:
                log.warning("relay health unreadable; keeping the last view", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.refresh_s)

    async def aclose(self) -> None:
        await self.store.aclose()

    async def flush(self) -> None:
        """Wait for the changes still being written (a stopping process hands them over)."""
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)
