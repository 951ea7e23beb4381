"""Recovery of tasks whose worker died: expired leases go back to the queue while attempts remain; a task out
of attempts ends as failed with its credits released (settled like any terminal transition)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.errors import TaskErrorCode
from reelgate.queue import repository, terminal
from reelgate.queue.repository import Fence
from reelgate.queue.states import TaskStatus


async def recover_expired(session: AsyncSession, on_ended: terminal.OnTaskEnded, *, now: float) -> list[str]:
    """Requeue what can be retried, fail what cannot; returns the requeued task ids."""
    requeued = await repository.requeue_expired(session, now=now)
    for task in await repository.expired_without_attempts(session, now=now):
        await terminal.fail(
            session,
            on_ended,
            task.id,
            code=TaskErrorCode.SERVICE_ERROR,
            message=f"The task's worker stopped {task.attempt} times; credits were released",
            from_statuses=(TaskStatus.PROCESSING,),
            fence=Fence(task.attempt, task.lease_owner or ""),
        )
    return requeued
