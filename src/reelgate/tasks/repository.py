"""SQL for tasks as the API sees them, and the compare-and-set terminal transitions.

Every terminal write names the states it may leave (and, for a worker, the attempt it holds), so exactly one
of two racing writers (a cancel and a finishing worker, two workers after a lease expired) wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.db.models import Task
from reelgate.tasks.states import CreditsState, TaskStatus


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


async def insert_task(session: AsyncSession, task: Task) -> None:
    session.add(task)
    await session.flush()


async def get_task(session: AsyncSession, task_id: str) -> Task | None:
    return await session.get(Task, task_id, populate_existing=True)


async def list_tasks(
    session: AsyncSession, api_key_id: str, *, limit: int, after: Task | None, not_finished_before: float
) -> list[Task]:
    query = select(Task).where(
        Task.api_key_id == api_key_id, or_(Task.finished_at.is_(None), Task.finished_at >= not_finished_before)
    )
    if after is not None:
        query = query.where(
            or_(Task.created_at < after.created_at, and_(Task.created_at == after.created_at, Task.id < after.id))
        )
    query = query.order_by(Task.created_at.desc(), Task.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())


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
            finished_at=now,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
            estimated_time_s=0,
            credits_state=CreditsState.RELEASED,
        )
        .returning(Task)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return result.scalar_one_or_none()


async def mark_completed(
    session: AsyncSession,
    task_id: str,
    *,
    fence: Fence,
    result_key: str,
    result_info: dict[str, Any],
    now: float,
) -> Task | None:
    """Compare-and-set `processing` -> `completed` for the lease holder, capturing the hold."""
    result = await session.execute(
        update(Task)
        .where(fenced(task_id, (TaskStatus.PROCESSING,), fence), Task.credits_state == CreditsState.HELD)
        .values(
            status=TaskStatus.COMPLETED,
            progress=100,
            result_key=result_key,
            result_info=result_info,
            finished_at=now,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
            estimated_time_s=0,
            credits_state=CreditsState.CAPTURED,
        )
        .returning(Task)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return result.scalar_one_or_none()


async def expired_result_keys(session: AsyncSession, *, finished_before: float) -> list[tuple[str, str]]:
    rows = await session.execute(
        select(Task.id, Task.result_key).where(Task.finished_at < finished_before, Task.result_key.is_not(None))
    )
    return [(task_id, key) for task_id, key in rows.all() if key]


async def forget_result(session: AsyncSession, task_id: str) -> None:
    await session.execute(update(Task).where(Task.id == task_id).values(result_key=None))
