"""What every background loop shares (the queue's workers, the callback deliverers): a name for the process
that holds leases, and the loop that does a round of work, then sleeps until woken, stopped, or its next
round is due.

Wake-ups come from this process (db/notify.py Wakeups, set after a commit) and, on PostgreSQL, from other
processes through LISTEN/NOTIFY. Polling stays the safety net, so a lost wake-up only costs latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable

from reelgate.db.database import Database
from reelgate.db.notify import listen

log = logging.getLogger(__name__)

# Never spin: work that another process is claiming right now can look due for a moment.
MIN_WAIT_S = 0.01


def process_identity() -> str:
    """`host:pid:random`: unique per loop, readable in the lease columns and the logs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def run_until_stopped(
    db: Database,
    channel: str,
    round_of_work: Callable[[], Awaitable[float]],
    stop: asyncio.Event,
    *,
    name: str,
    error_wait_s: float,
) -> None:
    """Run `round_of_work` until `stop`; it returns how long to wait at most before the next round (after a
    round that raised, `error_wait_s`). A wake-up on `channel` (this process or, on PostgreSQL, any other)
    ends the wait early."""
    wake = asyncio.Event()
    unsubscribe = db.wakeups.subscribe(channel, wake)
    listener = None if db.is_sqlite else asyncio.create_task(listen(db.url, channel, wake, stop))
    try:
        while not stop.is_set():
            # Cleared before the round, not after: a wake-up that arrives during the round is kept for the wait.
            wake.clear()
            try:
                wait_s = await round_of_work()
            except Exception:
                log.exception("%s loop error; continuing", name)
                wait_s = error_wait_s
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
            await asyncio.wait(waiters, timeout=max(wait_s, MIN_WAIT_S), return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
    finally:
        unsubscribe()
        if listener is not None:
            if not stop.is_set():
                listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(listener, return_exceptions=True)
