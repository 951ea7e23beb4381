"""Waking the deliverers the moment a callback is written to the outbox.

In this process: the transaction that writes the outbox row registers an `after_commit` hook that sets the
wake-up event of every deliverer running in the process, so the first attempt starts within milliseconds of
the terminal commit (and never before it: a rolled-back transaction wakes nobody). Across processes on
PostgreSQL: a NOTIFY on its own channel, sent inside the same transaction and so delivered only on commit.
Polling stays the safety net; a lost wake-up only costs latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from reelgate.db.notify import listen, notify

log = logging.getLogger(__name__)

CHANNEL = "reelgate_callbacks"
_WAKE_HOOKED = "reelgate_wake_deliverers"

# The deliverers running in this process, with the loop each runs on (a commit may happen on another
# thread's loop, e.g. under a test client, so events are set thread-safely).
_local: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()


def subscribe(wake: asyncio.Event) -> Callable[[], None]:
    """Have `wake` set whenever an outbox row commits in this process; returns the unsubscribe function."""
    entry = (asyncio.get_running_loop(), wake)
    _local.add(entry)
    return lambda: _local.discard(entry)


def _wake_local() -> None:
    for loop, wake in list(_local):
        with contextlib.suppress(RuntimeError):  # that loop has closed
            loop.call_soon_threadsafe(wake.set)


async def announce_after_commit(session: AsyncSession) -> None:
    """Wake the deliverers once the caller's transaction commits (here at once, elsewhere via NOTIFY)."""
    await notify(session, CHANNEL)
    sync_session = session.sync_session
    if not sync_session.info.get(_WAKE_HOOKED):
        sync_session.info[_WAKE_HOOKED] = True

        def on_commit(_session: Session) -> None:
            _wake_local()

        event.listen(sync_session, "after_commit", on_commit, once=True)


async def listen_for_callbacks(sqlalchemy_url: str, wake: asyncio.Event, stop: asyncio.Event) -> None:
    """Set `wake` on every outbox notification from other processes until `stop`."""
    await listen(sqlalchemy_url, CHANNEL, wake, stop)
