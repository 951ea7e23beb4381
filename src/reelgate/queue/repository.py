"""Every state transition of a task row, and nothing else writes them: claims, lease renewals, fenced worker
writes (progress, the upstream record, the finish), the way back to pending, and the compare-and-set
terminal transitions. `tasks/repository.py` owns the rest of the table's SQL (insert, reads, the result key).

A claim is one UPDATE whose WHERE picks the oldest claimable row: atomic on SQLite (inside BEGIN IMMEDIATE)
and on PostgreSQL (`FOR UPDATE SKIP LOCKED` lets concurrent claimers pass each other instead of queueing).
Each claim bumps `attempt`; every later write of that worker is fenced by (attempt, owner), so a worker that
lost its lease can change nothing. Terminal writes name the states they may leave, so exactly one of two
racing writers (a cancel and a finishing worker, two workers after a lease expired) wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.db.models import Task
from reelgate.engines.relay.base import UpstreamRecord
from reelgate.errors import TaskErrorCode
from reelgate.queue.states import CreditsState, TaskStatus


@dataclass(frozen=True)
class Fence:
    """What a worker holds: its claim is valid only while the row still carries this attempt and owner."""

    attempt: int
    owner: str


def fenced(task_id: str, statuses: tuple[TaskStatus, ...], fence: Fence | None) -> Any:
    """The row in one of `statuses`, and, for a worker, still under the lease it holds."""
    condition = and_(Task.id == task_id, Task.status.in_([str(s) for s in statuses]))
    if fence is not None:
        condition = and_(condition, Task.attempt == fence.attempt, Task.lease_owner == fence.owner)
    return condition


def _pending_again(*, available_at: float, now: float) -> dict[str, Any]:
    """The one way back to the queue: unleased, no progress, claimable from `available_at`."""
    return {
        "status": TaskStatus.PENDING,
        "lease_owner": None,
        "lease_expires_at": None,
        "progress": 0,
        "available_at": available_at,
        "updated_at": now,
    }


def _ended(now: float) -> dict[str, Any]:
    return {"finished_at": now, "updated_at": now, "lease_owner": None, "lease_expires_at": None, "estimated_time_s": 0}


def _changed(result: Any) -> bool:
    return bool(result.rowcount)


# --- claims and leases -----------------------------------------------------------------------------------


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
    return _changed(result)


async def retry_later(session: AsyncSession, task_id: str, fence: Fence, *, available_at: float, now: float) -> bool:
    """Give a failed attempt back to the queue (attempts left); fenced like every worker write."""
    result = await session.execute(
        update(Task)
        .where(fenced(task_id, (TaskStatus.PROCESSING,), fence))
        .values(**_pending_again(available_at=available_at, now=now))
    )
    return _changed(result)


async def defer(session: AsyncSession, task_id: str, fence: Fence, *, available_at: float, now: float) -> bool:
    """Back to pending until `available_at` because an upstream is busy. The next claim bumps `attempt` (the
    fence must only grow), so `max_attempts` grows with it: waiting for an upstream spends no attempt."""
    result = await session.execute(
        update(Task)
        .where(fenced(task_id, (TaskStatus.PROCESSING,), fence))
        .values(**_pending_again(available_at=available_at, now=now), max_attempts=Task.max_attempts + 1)
    )
    return _changed(result)


async def requeue_expired(session: AsyncSession, *, now: float) -> list[str]:
    """Tasks whose worker stopped renewing go back to pending while they have attempts left."""
    result = await session.execute(
        update(Task)
        .where(
            Task.status == TaskStatus.PROCESSING,
            Task.lease_expires_at < now,
            Task.attempt < Task.max_attempts,
        )
        .values(**_pending_again(available_at=now, now=now))
        .returning(Task.id)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return list(result.scalars().all())


async def release_leases(session: AsyncSession, owners: Sequence[str], *, now: float) -> list[str]:
    """The tasks these workers hold go back to pending at once (their token was revoked: whatever they still
    send is refused, so waiting for the leases to run out would only delay the tasks)."""
    if not owners:
        return []
    result = await session.execute(
        update(Task)
        .where(Task.status == TaskStatus.PROCESSING, Task.lease_owner.in_(list(owners)))
        .values(**_pending_again(available_at=now, now=now))
        .returning(Task.id)
        .execution_options(synchronize_session=False)
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


# --- the upstream record of relay tasks ------------------------------------------------------------------


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
    return _changed(result)


async def holds_lease(session: AsyncSession, task_id: str, fence: Fence, *, now: float) -> bool:
    """Whether `fence` still holds the task's lease (a remote worker's call is checked before it acts)."""
    row = await session.scalar(
        select(Task.id).where(fenced(task_id, (TaskStatus.PROCESSING,), fence), Task.lease_expires_at >= now)
    )
    return row is not None


@dataclass(frozen=True)
class StoredResult:
    """What a task's row says it keeps in storage, and which attempt it ended with."""

    status: str
    attempt: int
    lease_owner: str | None
    result_key: str | None
    poster_key: str | None

    @property
    def keys(self) -> set[str]:
        return {key for key in (self.result_key, self.poster_key) if key is not None}


async def stored_result(session: AsyncSession, task_id: str) -> StoredResult | None:
    """For a remote worker's call refused or repeated: which objects are the task's, never to be deleted."""
    row = (
        await session.execute(
            select(Task.status, Task.attempt, Task.lease_owner, Task.result_key, Task.poster_key).where(
                Task.id == task_id
            )
        )
    ).first()
    if row is None:
        return None
    return StoredResult(row.status, row.attempt, row.lease_owner, row.result_key, row.poster_key)


async def was_cancelled(session: AsyncSession, task_id: str) -> bool:
    row = (await session.execute(select(Task.status, Task.error_code).where(Task.id == task_id))).one_or_none()
    return row is not None and row[0] == TaskStatus.FAILED and row[1] == TaskErrorCode.REQUEST_CANCELLED


# --- terminal transitions --------------------------------------------------------------------------------


async def mark_completed(
    session: AsyncSession,
    task_id: str,
    *,
    fence: Fence,
    result_key: str,
    result_info: dict[str, Any],
    now: float,
    poster_key: str | None = None,
) -> Task | None:
    """Compare-and-set `processing` -> `completed` for the lease holder, capturing the hold."""
    result = await session.execute(
        update(Task)
        .where(fenced(task_id, (TaskStatus.PROCESSING,), fence), Task.credits_state == CreditsState.HELD)
        .values(
            status=TaskStatus.COMPLETED,
            progress=100,
            result_key=result_key,
            poster_key=poster_key,
            result_info=result_info,
            credits_state=CreditsState.CAPTURED,
            **_ended(now),
        )
        .returning(Task)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return result.scalar_one_or_none()


async def mark_failed(
    session: AsyncSession,
    task_id: str,
    *,
    code: str,
    message: str,
    now: float,
    from_statuses: tuple[TaskStatus, ...],
    fence: Fence | None = None,
    as_seen: Task | None = None,
) -> Task | None:
    """Compare-and-set to `failed`, releasing the hold. Returns the row if this call won the transition.

    `as_seen`: only if the relay state is still the one the caller judged by (a cancel decided while nothing
    had been sent upstream must not win once a submit has left)."""
    condition = and_(fenced(task_id, from_statuses, fence), Task.credits_state == CreditsState.HELD)
    if as_seen is not None:
        seen = as_seen.upstream_state
        condition = and_(condition, Task.upstream_state.is_(None) if seen is None else Task.upstream_state == seen)
    result = await session.execute(
        update(Task)
        .where(condition)
        .values(
            status=TaskStatus.FAILED,
            error_code=code,
            error_message=message,
            credits_state=CreditsState.RELEASED,
            **_ended(now),
        )
        .returning(Task)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return result.scalar_one_or_none()


# --- what the queue holds --------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueCounts:
    by_status: dict[str, int]
    # Pending tasks that may be claimed now (not waiting out a retry delay).
    ready: int


async def counts(session: AsyncSession, *, now: float) -> QueueCounts:
    rows = await session.execute(select(Task.status, func.count()).group_by(Task.status))
    ready = await session.scalar(
        select(func.count()).select_from(Task).where(Task.status == TaskStatus.PENDING, Task.available_at <= now)
    )
    return QueueCounts(by_status={status: count for status, count in rows.all()}, ready=int(ready or 0))
