"""Claim, heartbeat and recovery statements on the tasks table.

A claim is one UPDATE whose WHERE picks the oldest claimable row: atomic on SQLite (inside BEGIN IMMEDIATE)
and on PostgreSQL (`FOR UPDATE SKIP LOCKED` lets concurrent claimers pass each other instead of queueing).
Each claim bumps `attempt`; every later write of that worker is fenced by (attempt, owner).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.db.models import Task
from reelgate.tasks.repository import Fence, fenced
from reelgate.tasks.states import TaskStatus


async def claim(
    session: AsyncSession, *, engines: Sequence[str], owner: str, lease_s: float, now: float
) -> Task | None:
    oldest = (
        select(Task.id)
        .where(Task.status == TaskStatus.PENDING, Task.engine.in_(list(engines)), Task.available_at <= now)
        .order_by(Task.available_at, Task.created_at, Task.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    result = await session.execute(
        update(Task)
        .where(Task.id == oldest, Task.status == TaskStatus.PENDING)
        .values(
            status=TaskStatus.PROCESSING,
            attempt=Task.attempt + 1,
            lease_owner=owner,
            lease_expires_at=now + lease_s,
            started_at=now,
            updated_at=now,
            progress=0,
        )
        .returning(Task)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return result.scalar_one_or_none()


async def heartbeat(
    session: AsyncSession,
    task_id: str,
    fence: Fence,
    *,
    lease_s: float,
    progress: int,
    estimated_time_s: int,
    now: float,
    extra: dict[str, Any] | None = None,
) -> bool:
    """Renew the lease and publish progress. False = the lease is gone (expired and re-claimed, or the
    task was cancelled): the worker must stop and write nothing more."""
    result = await session.execute(
        update(Task)
        .where(fenced(task_id, (TaskStatus.PROCESSING,), fence))
        .values(
            lease_expires_at=now + lease_s,
            progress=progress,
            estimated_time_s=estimated_time_s,
            updated_at=now,
            **(extra or {}),
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def requeue_expired(session: AsyncSession, *, now: float) -> list[str]:
    """Tasks whose worker stopped renewing go back to pending while they have attempts left."""
    result = await session.execute(
        update(Task)
        .where(
            Task.status == TaskStatus.PROCESSING,
            Task.lease_expires_at < now,
            Task.attempt < Task.max_attempts,
        )
        .values(
            status=TaskStatus.PENDING,
            lease_owner=None,
            lease_expires_at=None,
            progress=0,
            available_at=now,
            updated_at=now,
        )
        .returning(Task.id)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return list(result.scalars().all())


async def expired_without_attempts(session: AsyncSession, *, now: float) -> list[Task]:
    rows = await session.scalars(
        select(Task).where(
            Task.status == TaskStatus.PROCESSING,
            Task.lease_expires_at < now,
            Task.attempt >= Task.max_attempts,
        )
    )
    return list(rows.all())


async def retry_later(session: AsyncSession, task_id: str, fence: Fence, *, available_at: float, now: float) -> bool:
    """Give a failed attempt back to the queue (attempts left); fenced like every worker write."""
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
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def count_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Task.status, func.count()).group_by(Task.status))
    return {status: count for status, count in rows.all()}
