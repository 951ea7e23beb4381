"""Wake-ups: "there is new work on channel X, look now".

In this process: `notify(session, channel)` registers an `after_commit` hook on the session, and the commit
sets every event subscribed to the channel in this process (thread-safely: a commit may happen on another
thread's loop, e.g. under a test client). Nobody is woken for work a rolled-back transaction never created.
Across processes on PostgreSQL: a NOTIFY sent in the same transaction, delivered only if it commits, and
`listen` sets an event on every notification. Listeners treat a wake-up as "look now"; polling stays the
safety net, so a lost wake-up or a dropped listener connection only costs latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

RECONNECT_DELAY_S = 2.0
# Where a session finds the Wakeups of its Database (db/database.py puts it in every session's info).
WAKEUPS_INFO = "reelgate_wakeups"
_PENDING_INFO = "reelgate_pending_wakeups"


class Wakeups:
    """The in-process subscribers of each channel, with the loop each waits on."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._lock = threading.Lock()

    def subscribe(self, channel: str, wake: asyncio.Event) -> Callable[[], None]:
        """Have `wake` set whenever work on `channel` commits in this process; returns the unsubscribe."""
        entry = (asyncio.get_running_loop(), wake)
        with self._lock:
            self._subscribers.setdefault(channel, set()).add(entry)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.get(channel, set()).discard(entry)

        return unsubscribe

    def wake(self, channel: str) -> None:
        with self._lock:
            subscribers = list(self._subscribers.get(channel, ()))
        for loop, wake in subscribers:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(wake.set)


async def notify(session: AsyncSession, channel: str, payload: str = "") -> None:
    """Wake the listeners of `channel` once the session's transaction commits: here and, on PostgreSQL, in
    every other process (with `payload`, e.g. the id of the task that changed)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload})
    sync_session = session.sync_session
    wakeups: Wakeups | None = sync_session.info.get(WAKEUPS_INFO)
    if wakeups is None:
        return
    pending: set[str] | None = sync_session.info.get(_PENDING_INFO)
    if pending is None:
        pending = sync_session.info[_PENDING_INFO] = set()

        def on_commit(_session: Session) -> None:
            channels = sync_session.info.pop(_PENDING_INFO, set())
            for name in channels:
                wakeups.wake(name)

        def on_rollback(_session: Session) -> None:
            sync_session.info.pop(_PENDING_INFO, None)

        event.listen(sync_session, "after_commit", on_commit, once=True)
        event.listen(sync_session, "after_rollback", on_rollback, once=True)
    pending.add(channel)


def _asyncpg_dsn(sqlalchemy_url: str) -> str:
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def listen(
    sqlalchemy_url: str,
    channel: str,
    wake: asyncio.Event,
    stop: asyncio.Event,
    *,
    on_payload: Callable[[str], None] | None = None,
    connected: Callable[[], None] | None = None,
) -> None:
    """Set `wake` on every notification on `channel` until `stop` (and hand its payload to `on_payload`, before
    `wake` is set); reconnects after connection loss. `connected` is called each time the listener is (again)
    in place: notifications sent while it was away are lost, so a caller may look for what it missed."""
    dsn = _asyncpg_dsn(sqlalchemy_url)

    def on_notify(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
        if on_payload is not None:
            on_payload(payload)
        wake.set()

    while not stop.is_set():
        connection = None
        try:
            connection = await asyncpg.connect(dsn)
            await connection.add_listener(channel, on_notify)
            if connected is not None:
                connected()
            lost = asyncio.Event()
            connection.add_termination_listener(lambda *_args, lost=lost: lost.set())
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning(
                "notifications unavailable; polling only for now", extra={"channel": channel, "reason": str(exc)}
            )
        finally:
            if connection is not None and not connection.is_closed():
                with contextlib.suppress(Exception):
                    await connection.close()
        if not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=RECONNECT_DELAY_S)
