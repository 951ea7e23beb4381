"""Recovery of tasks whose worker died: expired leases go back to the queue while attempts remain; a task out
of attempts ends as failed with its credits released (settled like any terminal transition).

Every process that serves the API or works the database runs it (`recover_forever`): a remote worker cannot,
and a deployment of API replicas with only remote workers must still get its tasks back. Several processes
recovering at once is safe: every write is a compare-and-set on the expired lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.db.models import Task
from reelgate.db.notify import notify
from reelgate.errors import TaskErrorCode
from reelgate.logs import task_context
from reelgate.queue import TASK_EVENTS_CHANNEL, repository, terminal
from reelgate.queue.context import QueueResources
from reelgate.queue.repository import Fence
from reelgate.queue.states import TaskStatus

log = logging.getLogger(__name__)


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


async def recover_forever(resources: QueueResources, stop: asyncio.Event) -> None:
    """Recover expired leases every quarter lease until `stop`."""
    while not stop.is_set():
        try:
            async with resources.db.transaction() as session:
                recovered = await recover_expired(session, resources.task_ended, now=time.time())
            for task_id in recovered.requeued:
                with task_context(task_id):
                    log.warning("lease expired; task requeued")
            for task in recovered.failed:
                with task_context(task.id):
                    log.warning("lease expired with no attempt left; task failed, credits released")
                await terminal.discard_losing_videos(resources.storage, task)
        except Exception:
            log.exception("lease recovery failed; will retry")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=resources.settings.lease_s / 4)
