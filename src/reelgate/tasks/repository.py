"""SQL for tasks as the API sees them: insert, reads, pages, and the result key. Every state transition of a
row (claims, leases, fenced worker writes, the terminal compare-and-sets) is the queue's
(queue/repository.py); the tasks package asks it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Row, Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.db.database import Database, PointRead
from reelgate.db.models import Task
from reelgate.queue.states import UNFINISHED

# Keeps an IN (...) list well under every database's parameter limit.
_IDS_PER_QUERY = 500


_TASK_COLUMNS = tuple(column.key for column in Task.__table__.columns)
# One statement object for every insert, its values passed as parameters: compiled once, found by a memoized
# cache key (a statement built with `.values(...)` per call is hashed anew, a bind per column).
_INSERT_TASK = insert(cast(Table, Task.__table__))


async def insert_task(session: AsyncSession, task: Task) -> None:
    """Insert a new (transient) task as one Core statement: the ORM's unit of work cost a create more than the
    statement itself (docs/benchmarks.md, the profile). `task` stays a plain object outside the session, which
    is all its callers need of it (its task object, its id)."""
    await session.execute(_INSERT_TASK, {name: getattr(task, name) for name in _TASK_COLUMNS})


async def get_task(session: AsyncSession, task_id: str) -> Task | None:
    return await session.get(Task, task_id, populate_existing=True)


# Built once with a bound parameter: SQLAlchemy then finds its compiled form by a memoized cache key, instead
# of building and hashing a new statement per request (a fifth of a poll's CPU in the profile).
_TASK_ROW = select(*Task.__table__.columns).where(Task.id == bindparam("task_id"))


_TASK_READ = PointRead(_TASK_ROW)


async def task_row(db: Database, task_id: str) -> Any | None:
    """A task as a plain row (its attributes named like the ORM's) in one statement of its own, for the hot
    read `GET /v1/tasks/{id}` that is asked every few seconds per task (db/database.py PointRead)."""
    return await db.point_read(_TASK_READ, {"task_id": task_id})


async def get_tasks(session: AsyncSession, task_ids: list[str]) -> list[Task]:
    found: list[Task] = []
    for start in range(0, len(task_ids), _IDS_PER_QUERY):
        chunk = task_ids[start : start + _IDS_PER_QUERY]
        found += (await session.scalars(select(Task).where(Task.id.in_(chunk)))).all()
    return found


async def lock_task(session: AsyncSession, task_id: str) -> None:
    """Serialise writers of one task's dependants (PostgreSQL row lock; SQLite transactions are serial)."""
    await session.execute(select(Task.id).where(Task.id == task_id).with_for_update())


async def list_tasks(
    session: AsyncSession, api_key_id: str, *, limit: int, after: Task | None, not_finished_before: float
) -> list[Row[Any]]:
    # Core rows, not ORM objects: a page builds 20 task objects, and an identity map of 20 rows was most of it.
    query = select(*Task.__table__.columns).where(
        Task.api_key_id == api_key_id, or_(Task.finished_at.is_(None), Task.finished_at >= not_finished_before)
    )
    if after is not None:
        query = query.where(
            or_(Task.created_at < after.created_at, and_(Task.created_at == after.created_at, Task.id < after.id))
        )
    query = query.order_by(Task.created_at.desc(), Task.id.desc()).limit(limit)
    return list((await session.execute(query)).all())


async def count_unfinished(session: AsyncSession, api_key_id: str) -> int:
    query = (
        select(func.count())
        .select_from(Task)
        .where(Task.api_key_id == api_key_id, Task.status.in_([str(s) for s in UNFINISHED]))
    )
    return int(await session.scalar(query) or 0)


@dataclass(frozen=True)
class StoredObjects:
    """What a finished task may have in storage: a video per attempt, and the inputs it stored."""

    task_id: str
    attempts: int
    image_refs: list[str]


async def expired_unpurged(session: AsyncSession, *, finished_before: float, limit: int) -> list[StoredObjects]:
    rows = await session.execute(
        select(Task.id, Task.attempt, Task.image_urls)
        .where(Task.purged.is_(False), Task.finished_at < finished_before)
        .order_by(Task.finished_at)
        .limit(limit)
    )
    return [StoredObjects(task_id, int(attempt), list(refs or [])) for task_id, attempt, refs in rows.all()]


async def mark_purged(session: AsyncSession, task_id: str) -> None:
    """Its objects are deleted: the row keeps its history but names no object any more."""
    await session.execute(
        update(Task).where(Task.id == task_id).values(purged=True, result_key=None, poster_key=None, image_urls=[])
    )


@dataclass(frozen=True)
class SettlementState:
    """What a task row says about its money, for the audit."""

    status: str
    credits_state: str
    price_millicredits: int


async def settlement_states(session: AsyncSession, task_ids: list[str]) -> dict[str, SettlementState]:
    states: dict[str, SettlementState] = {}
    for start in range(0, len(task_ids), _IDS_PER_QUERY):
        chunk = task_ids[start : start + _IDS_PER_QUERY]
        rows = await session.execute(
            select(Task.id, Task.status, Task.credits_state, Task.credits_reserved_millicredits).where(
                Task.id.in_(chunk)
            )
        )
        for task_id, status, credits_state, price in rows.all():
            states[task_id] = SettlementState(status, credits_state, int(price))
    return states


@dataclass(frozen=True)
class TaskProgress:
    """What an event stream shows of a task between its start and its end."""

    id: str
    status: str
    progress: int
    estimated_time_s: int
    attempt: int


async def task_progress(session: AsyncSession, task_ids: list[str]) -> list[TaskProgress]:
    """The progress of many tasks at once: the event streams' one query per tick, whatever their number."""
    found: list[TaskProgress] = []
    for start in range(0, len(task_ids), _IDS_PER_QUERY):
        chunk = task_ids[start : start + _IDS_PER_QUERY]
        rows = await session.execute(
            select(Task.id, Task.status, Task.progress, Task.estimated_time_s, Task.attempt).where(Task.id.in_(chunk))
        )
        found += [TaskProgress(i, s, int(p), int(e), int(a)) for i, s, p, e, a in rows.all()]
    return found
