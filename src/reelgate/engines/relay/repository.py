"""SQL of relay tasks: the upstream record and the busy-upstream requeue, every write fenced by the worker's
lease exactly like the queue's own writes (tasks/repository.py `fenced`)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.db.models import Task
from reelgate.engines.relay.base import UpstreamRecord
from reelgate.errors import TaskErrorCode
from reelgate.tasks.repository import Fence, fenced
from reelgate.tasks.states import TaskStatus


async def load(session: AsyncSession, task_id: str) -> tuple[UpstreamRecord | None, float]:
    """The task's upstream record (None if it never reached an upstream) and its creation time."""
    row = (
        await session.execute(
            select(
                Task.upstream_provider,
                Task.upstream_task_id,
                Task.upstream_state,
                Task.upstream_submitted_at,
                Task.created_at,
            ).where(Task.id == task_id)
        )
    ).one()
    provider, upstream_id, state, submitted_at, created_at = row
    record = None if provider is None else UpstreamRecord(provider, upstream_id, state, submitted_at)
    return record, float(created_at)


async def record_upstream(
    session: AsyncSession, task_id: str, fence: Fence, record: UpstreamRecord, *, now: float
) -> bool:
    """False = the lease is gone: nothing was written, and the caller must stop."""
    result = await session.execute(
        update(Task)
        .where(fenced(task_id, (TaskStatus.PROCESSING,), fence))
        .values(
            upstream_provider=record.provider,
            upstream_task_id=record.task_id,
            upstream_state=record.state,
            upstream_submitted_at=record.submitted_at,
            updated_at=now,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def defer(session: AsyncSession, task_id: str, fence: Fence, *, available_at: float, now: float) -> bool:
    """Back to pending until `available_at` because the upstream is busy. The next claim bumps `attempt` (the
    fence must only grow), so `max_attempts` grows with it: waiting for an upstream spends no attempt."""
    result = await session.execute(
        update(Task)
        .where(fenced(task_id, (TaskStatus.PROCESSING,), fence))
        .values(
            status=TaskStatus.PENDING,
            lease_owner=None,
            lease_expires_at=None,
            progress=0,
            available_at=available_at,
            updated_at=now,
            max_attempts=Task.max_attempts + 1,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def was_cancelled(session: AsyncSession, task_id: str) -> bool:
    row = (await session.execute(select(Task.status, Task.error_code).where(Task.id == task_id))).one_or_none()
    return row is not None and row[0] == TaskStatus.FAILED and row[1] == TaskErrorCode.REQUEST_CANCELLED
