"""SQL for tasks as the API sees them: insert, reads, pages, and the result key. Every state transition of a
row (claims, leases, fenced worker writes, the terminal compare-and-sets) is the queue's
(queue/repository.py); the tasks package asks it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Integer, Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.db.database import Database
from reelgate.db.driver import Statement
from reelgate.db.models import Task
from reelgate.queue.states import UNFINISHED

# Keeps an IN (...) list well under every database's parameter limit.
_IDS_PER_QUERY = 500


_TASK_COLUMNS = tuple(column.key for column in Task.__table__.columns)
# Every column, from parameters: one fixed statement for the create's driver transaction (db/driver.py).
INSERT_TASK = Statement(insert(cast(Table, Task.__table__)).inline(), column_keys=_TASK_COLUMNS)
# The key's unfinished tasks: before the insert in a batch (db/driver.py `Batch`), it counts the others.
COUNT_UNFINISHED = Statement(
    select(func.count())
    .select_from(Task)
    .where(
        Task.api_key_id == bindparam("api_key_id"),
        # One bound value per status (a plain list would be expanded when executed, which a fixed statement
        # is not).
        Task.status.in_([bindparam(f"unfinished_{i}", str(s)) for i, s in enumerate(UNFINISHED)]),
    )
)


def insert_params(values: dict[str, Any]) -> dict[str, Any]:
    """`INSERT_TASK`'s parameters: the value of every column (a missing one is a KeyError, not a default)."""
    return {name: values[name] for name in _TASK_COLUMNS}


def count_params(api_key_id: str) -> dict[str, Any]:
    return {"api_key_id": api_key_id}


async def get_task(session: AsyncSession, task_id: str) -> Task | None:
    return await session.get(Task, task_id, populate_existing=True)


# Built and compiled once (db/driver.py), with a bound parameter: building and hashing a statement per request
# was a fifth of a poll's CPU in the profile.
_TASK_READ = Statement(select(*Task.__table__.columns).where(Task.id == bindparam("task_id")))


async def task_row(db: Database, task_id: str) -> Any | None:
    """A task as a plain row (its attributes named like the ORM's) in one statement of its own, for the hot
    read `GET /v1/tasks/{id}` that is asked every few seconds per task (db/driver.py)."""
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


def _page(*, after: bool) -> Statement:
    # Core rows, not ORM objects: a page builds 20 task objects, and an identity map of 20 rows was most of it.
    query = select(*Task.__table__.columns).where(
        Task.api_key_id == bindparam("api_key_id"),
        or_(Task.finished_at.is_(None), Task.finished_at >= bindparam("not_finished_before")),
    )
    if after:
        query = query.where(
            or_(
                Task.created_at < bindparam("after_created_at"),
                and_(Task.created_at == bindparam("after_created_at"), Task.id < bindparam("after_id")),
            )
        )
    limit = bindparam("limit", type_=Integer)
    return Statement(query.order_by(Task.created_at.desc(), Task.id.desc()).limit(limit))


# Fixed statements on the driver's own connections (db/driver.py): building and compiling the query per
# request through a session was a third of a page's CPU in the profile.
_FIRST_PAGE = _page(after=False)
_LATER_PAGE = _page(after=True)


async def list_tasks(
    db: Database, api_key_id: str, *, limit: int, after: Any | None, not_finished_before: float
) -> list[Any]:
    """Up to `limit` of the key's tasks newest first, after the task `after` (a row) if given, as plain rows."""
    params: dict[str, Any] = {"api_key_id": api_key_id, "not_finished_before": not_finished_before, "limit": limit}
    if after is None:
        return await db.rows_read(_FIRST_PAGE, params)
    return await db.rows_read(_LATER_PAGE, {**params, "after_created_at": after.created_at, "after_id": after.id})


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


async def existing_ids(session: AsyncSession, task_ids: list[str]) -> set[str]:
    """Which of these task ids have a row."""
    found: set[str] = set()
    for start in range(0, len(task_ids), _IDS_PER_QUERY):
        chunk = task_ids[start : start + _IDS_PER_QUERY]
        found.update((await session.scalars(select(Task.id).where(Task.id.in_(chunk)))).all())
    return found


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
