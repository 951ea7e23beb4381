"""Cross-process wake-ups for the queue on PostgreSQL: a create NOTIFYs in its own transaction, and every
worker LISTENs, so a standalone worker claims at once instead of at its next poll."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.db.notify import listen, notify

CHANNEL = "reelgate_tasks"


async def notify_new_task(session: AsyncSession) -> None:
    await notify(session, CHANNEL)


async def listen_for_tasks(sqlalchemy_url: str, wake: asyncio.Event, stop: asyncio.Event) -> None:
    await listen(sqlalchemy_url, CHANNEL, wake, stop)
