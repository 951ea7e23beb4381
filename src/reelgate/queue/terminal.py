"""The terminal transitions of a task and what must commit with them.

A task ends in one compare-and-set (queue/repository.py); the one call that wins then runs the
`OnTaskEnded` hook in the same transaction: the tasks package settles the credits (capture or release) and
writes the callback to the outbox there, so both are in the database if and only if the outcome is. The
queue only knows that such a hook exists; it is wired by `reelgate.resources`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.db.models import Task
from reelgate.db.notify import notify
from reelgate.queue import TASK_EVENTS_CHANNEL, repository
from reelgate.queue.repository import Fence
from reelgate.queue.states import TaskStatus
from reelgate.storage.base import Storage
from reelgate.storage.keys import attempt_poster_keys, attempt_video_keys


class OnTaskEnded(Protocol):
    async def __call__(self, session: AsyncSession, task: Task, now: float) -> None: ...


async def complete(
    session: AsyncSession,
    on_ended: OnTaskEnded,
    task_id: str,
    *,
    fence: Fence,
    result_key: str,
    result_info: dict[str, Any],
    poster_key: str | None = None,
) -> Task | None:
    """End a task as completed (its hold captured); None if the lease was lost."""
    now = time.time()
    won = await repository.mark_completed(
        session, task_id, fence=fence, result_key=result_key, result_info=result_info, now=now, poster_key=poster_key
    )
    if won is not None:
        await on_ended(session, won, now)
        await notify(session, TASK_EVENTS_CHANNEL, task_id)
    return won


async def fail(
    session: AsyncSession,
    on_ended: OnTaskEnded,
    task_id: str,
    *,
    code: str,
    message: str,
    from_statuses: tuple[TaskStatus, ...],
    fence: Fence | None = None,
    as_seen: Task | None = None,
) -> Task | None:
    """End a task as failed (its hold released); None if another writer won. `as_seen`: see
    repository.mark_failed."""
    now = time.time()
    won = await repository.mark_failed(
        session,
        task_id,
        code=code,
        message=message,
        now=now,
        from_statuses=from_statuses,
        fence=fence,
        as_seen=as_seen,
    )
    if won is not None:
        await on_ended(session, won, now)
        await notify(session, TASK_EVENTS_CHANNEL, task_id)
    return won


async def discard_losing_videos(storage: Storage, task: Task) -> None:
    """After a task ended (committed): delete what its other attempts may have stored, videos and posters (a
    worker that died between its upload and its finish leaves them behind). Run after the commit, since
    storage is not part of the transaction; the expiry sweep deletes whatever a crash right here leaves."""
    kept = {task.result_key, task.poster_key}
    for key in attempt_video_keys(task.id, task.attempt) + attempt_poster_keys(task.id, task.attempt):
        if key not in kept:
            await asyncio.to_thread(storage.delete, key)
