"""The workers registry: every worker advertises what it runs in the `workers` table (the one owner of its
SQL), renews `last_seen_at` while it lives, and deletes its row on a clean stop.

Routing asks this registry, never the API process's own engines: a model is accepted only when a worker
seen within `REELGATE_WORKER_TTL_S` advertises one of its engines as available, so an API replica without
weights routes to a GPU worker that has them, and no replica accepts a task nobody can serve.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from reelgate import __version__
from reelgate.db.database import Database
from reelgate.db.models import Worker
from reelgate.engines.base import Availability
from reelgate.queue.schemas import EngineState, WorkerList, WorkerView

# A row not seen for this many TTLs is a worker that died long ago; any live worker deletes it.
_FORGET_AFTER_TTLS = 100


@dataclass(frozen=True)
class Advert:
    """What one worker tells the registry about itself."""

    id: str
    kind: str  # "database" | "remote"
    engines: Mapping[str, Availability]
    concurrency: int
    running: int
    # A remote worker's token; None for a database worker.
    token_id: str | None = None
    # Where the worker says it runs (a remote worker's own host and pid, not the API's that registers it).
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    version: str = __version__


def _engines_json(engines: Mapping[str, Availability]) -> dict[str, dict[str, object]]:
    return {name: {"available": a.ok, "reason": a.reason} for name, a in engines.items()}


async def register(session: AsyncSession, advert: Advert, *, now: float) -> None:
    await session.execute(delete(Worker).where(Worker.id == advert.id))
    session.add(
        Worker(
            id=advert.id,
            kind=advert.kind,
            host=advert.host,
            pid=advert.pid,
            version=advert.version,
            engines=_engines_json(advert.engines),
            concurrency=advert.concurrency,
            running=advert.running,
            started_at=now,
            last_seen_at=now,
            token_id=advert.token_id,
        )
    )
    await session.flush()


async def heartbeat(session: AsyncSession, advert: Advert, *, now: float, ttl_s: float) -> bool:
    """Renew the worker's row (and forget long-dead ones). False = the row is gone (a registry reset, or an
    operator removed it): the caller registers again."""
    result = await session.execute(
        update(Worker)
        .where(Worker.id == advert.id)
        .values(last_seen_at=now, running=advert.running, engines=_engines_json(advert.engines))
    )
    await session.execute(delete(Worker).where(Worker.last_seen_at < now - _FORGET_AFTER_TTLS * ttl_s))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def deregister(session: AsyncSession, worker_id: str) -> None:
    await session.execute(delete(Worker).where(Worker.id == worker_id))


async def get_worker(session: AsyncSession, worker_id: str) -> Worker | None:
    return await session.get(Worker, worker_id)


async def forget_workers_of_token(session: AsyncSession, token_id: str) -> list[str]:
    """Delete the registrations of a token's workers; returns their ids (their leases are to be released)."""
    ids = list((await session.scalars(select(Worker.id).where(Worker.token_id == token_id))).all())
    if ids:
        await session.execute(delete(Worker).where(Worker.id.in_(ids)))
    return ids


async def workers(session: AsyncSession) -> list[Worker]:
    """Every registered worker, most recently seen first (the dead ones too, until they are forgotten)."""
    return list((await session.scalars(select(Worker).order_by(Worker.last_seen_at.desc(), Worker.id))).all())


def is_live(worker: Worker, *, now: float, ttl_s: float) -> bool:
    return worker.last_seen_at >= now - ttl_s


def available_engines(worker: Worker) -> set[str]:
    return {
        name for name, state in (worker.engines or {}).items() if isinstance(state, dict) and state.get("available")
    }


def count_live(rows: list[Worker], *, now: float, ttl_s: float) -> dict[str, int]:
    """Engine -> number of live workers advertising it as available."""
    counts: dict[str, int] = {}
    for worker in rows:
        if is_live(worker, now=now, ttl_s=ttl_s):
            for name in available_engines(worker):
                counts[name] = counts.get(name, 0) + 1
    return counts


async def live_engines(session: AsyncSession, *, now: float, ttl_s: float) -> dict[str, int]:
    rows = await session.scalars(select(Worker).where(Worker.last_seen_at >= now - ttl_s))
    return count_live(list(rows.all()), now=now, ttl_s=ttl_s)


class LiveEngines:
    """The registry's answer to "which engines can serve now", read at most once a second per process: every
    create asks it, and a worker's liveness is judged over REELGATE_WORKER_TTL_S anyway."""

    def __init__(self, db: Database, *, ttl_s: float, max_age_s: float = 1.0) -> None:
        self._db = db
        self._ttl_s = ttl_s
        self._max_age_s = max_age_s
        self._counts: dict[str, int] = {}
        self._read_at = float("-inf")
        self._reading = False

    async def counts(self, *, fresh: bool = False) -> dict[str, int]:
        """`fresh`: read the registry now, whatever the age of the last read."""
        if fresh or self._read_at == float("-inf"):
            return await self._read()
        if time.monotonic() - self._read_at > self._max_age_s and not self._reading:
            # One read at a time: the creates in flight when the last read ages (32 under load) answer from it
            # for the few milliseconds this one takes, rather than each reading the registry themselves.
            self._reading = True
            try:
                await self._read()
            finally:
                self._reading = False
        return self._counts

    async def _read(self) -> dict[str, int]:
        async with self._db.read() as session:
            self._counts = await live_engines(session, now=time.time(), ttl_s=self._ttl_s)
        self._read_at = time.monotonic()
        return self._counts

    def forget(self) -> None:
        """Read again at the next ask (a worker of this process just registered or stopped)."""
        self._read_at = float("-inf")


async def list_workers(db: Database, *, ttl_s: float) -> WorkerList:
    """Every registered worker with its engines, live or not, and the live count per engine."""
    now = time.time()
    async with db.read() as session:
        rows = await workers(session)
    views = [
        WorkerView(
            id=row.id,
            kind="remote" if row.kind == "remote" else "database",
            host=row.host,
            pid=row.pid,
            version=row.version,
            engines={name: EngineState.model_validate(state) for name, state in (row.engines or {}).items()},
            concurrency=row.concurrency,
            running=row.running,
            started=row.started_at,
            last_seen=row.last_seen_at,
            live=is_live(row, now=now, ttl_s=ttl_s),
        )
        for row in rows
    ]
    return WorkerList(data=views, live_by_engine=count_live(rows, now=now, ttl_s=ttl_s))
