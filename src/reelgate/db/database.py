"""The async database handle: one engine per process, transactions owned by the caller."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from reelgate.db.notify import WAKEUPS_INFO, Wakeups

SQLITE_BUSY_TIMEOUT_MS = 30_000
_READ_ONLY = "reelgate_read_only"


def _make_sqlite_writes_immediate(engine: AsyncEngine) -> None:
    # Every transaction takes the write lock up front (BEGIN IMMEDIATE): a deferred transaction that reads
    # and then writes can fail with SQLITE_BUSY at once when another writer committed in between, whatever
    # the busy timeout. Readers still run concurrently in WAL mode outside our transactions.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _enable_wal(cursor: Any) -> None:
    """WAL is a property of the file, set once by its first user. Switching needs a lock that SQLite does not
    wait for (the busy timeout does not apply), so processes starting together on a new file retry briefly."""
    for attempt in range(50):
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:
            if attempt == 49:
                raise
            time.sleep(0.1)


class Database:
    def __init__(self, url: str, *, connect_args: dict[str, Any] | None = None) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"connect_args": connect_args or {}}
        if not self.is_sqlite:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _make_sqlite_writes_immediate(self.engine)
        # The in-process subscribers of wake-ups (db/notify.py): one set per database handle, not per module,
        # so several services in one process (tests) never wake each other.
        self.wakeups = Wakeups()
        info = {WAKEUPS_INFO: self.wakeups}
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False, info=info)
        # Reads take no write lock on SQLite (WAL readers never block, nor are blocked by, the writer).
        self._read_sessions = async_sessionmaker(
            self.engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False, autoflush=False, info=info
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: committed when the block ends, rolled back if it raises."""
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work (a consistent snapshot); writing in it is a bug."""
        async with self._read_sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
