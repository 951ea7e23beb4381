"""Recovery of tasks whose worker died: expired leases go back to the queue while attempts remain; a task out
of attempts ends as failed with its credits released (settled like any terminal transition)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.db.models import Task
from reelgate.db.notify import notify
from reelgate.errors import TaskErrorCode
from reelgate.queue import TASK_EVENTS_CHANNEL, repository, terminal
from reelgate.queue.repository import Fence
from reelgate.queue.states import TaskStatus


@dataclass(frozen=True)
class Recovered:
    requeued: list[str]
    # Ended as failed, out of attempts (their stored attempt videos are to be discarded after the commit).
    failed: list[Task]


async def recover_expired(session: AsyncSession, on_ended: terminal.OnTaskEnded, *, now: float) -> Recovered:
    """Requeue what can be retried, fail what cannot."""
    requeued = await repository.requeue_expired(session, now=now)
    for task_id in requeued:
        await notify(session, TASK_EVENTS_CHANNEL, task_id)
    failed: list[Task] = []
    for task in await repository.expired_without_attempts(session, now=now):
        ended = await terminal.fail(
            session,
            on_ended,
            task.id,
            code=TaskErrorCode.SERVICE_ERROR,
            message=f"The task's worker stopped {task.attempt} times; credits were released",
            from_statuses=(TaskStatus.PROCESSING,),
            fence=Fence(task.attempt, task.lease_owner or ""),
        )
        if ended is not None:
            failed.append(ended)
    return Recovered(requeued=requeued, failed=failed)
