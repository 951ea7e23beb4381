"""PostgreSQL LISTEN/NOTIFY as a wake-up signal between processes.

A NOTIFY sent inside a transaction is delivered only if it commits, so nobody is woken for work that does not
exist. Listeners treat a notification as "look now"; polling stays the safety net, so a lost notification or a
dropped listener connection only costs latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

RECONNECT_DELAY_S = 2.0


async def notify(session: AsyncSession, channel: str) -> None:
    """NOTIFY `channel` when the session's transaction commits (nothing on SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})


def _asyncpg_dsn(sqlalchemy_url: str) -> str:
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def listen(sqlalchemy_url: str, channel: str, wake: asyncio.Event, stop: asyncio.Event) -> None:
    """Set `wake` on every notification on `channel` until `stop`; reconnects after connection loss."""
    dsn = _asyncpg_dsn(sqlalchemy_url)

    def on_notify(*_args: Any) -> None:
        wake.set()

    while not stop.is_set():
        connection = None
        try:
            connection = await asyncpg.connect(dsn)
            await connection.add_listener(channel, on_notify)
            lost = asyncio.Event()
            connection.add_termination_listener(lambda *_args, lost=lost: lost.set())
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
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
