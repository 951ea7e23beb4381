"""The async database handle: one engine per process, transactions owned by the caller."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from reelgate.db.notify import WAKEUPS_INFO, Wakeups
from reelgate.db.sqlite_inline import inline_connector

SQLITE_BUSY_TIMEOUT_MS = 30_000
_READ_ONLY = "reelgate_read_only"
# A connection used for one statement at a time: no BEGIN, each statement is its own transaction (a
# consistent snapshot of one statement is all a point read needs).
_SINGLE_STATEMENT = "reelgate_single_statement"
SqliteSynchronous = Literal["NORMAL", "FULL"]


def _make_sqlite_writes_immediate(engine: AsyncEngine, synchronous: SqliteSynchronous) -> None:
    # Every transaction takes the write lock up front (BEGIN IMMEDIATE): a deferred transaction that reads
    # and then writes can fail with SQLITE_BUSY at once when another writer committed in between, whatever
    # the busy timeout. Readers still run concurrently in WAL mode outside our transactions.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The busy timeout is not SQLite's here: the inline connection (db/sqlite_inline.py) waits for locks
        # without blocking the event loop, up to SQLITE_BUSY_TIMEOUT_MS.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        # NORMAL: a commit is atomic and survives a crash of the process, but the last commits before a power
        # loss or an OS crash may be lost (the WAL is fsynced at checkpoints). FULL: every commit is fsynced.
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get(_SINGLE_STATEMENT, False):
            return
        conn.exec_driver_sql("BEGIN" if options.get(_READ_ONLY, False) else "BEGIN IMMEDIATE")


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


def _drop_closed_connections(engine: AsyncEngine) -> None:
    """A pooled connection the server closed (a restart, an idle timeout) is replaced at checkout. asyncpg sees
    the server's goodbye on its socket as it happens, so this costs no round trip, unlike SQLAlchemy's
    pre-ping; a connection that dies silently fails its statement once, and SQLAlchemy then recycles the
    whole pool."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        if driver is not None and driver.is_closed():
            raise DisconnectionError("connection closed by the server")


class Database:
    def __init__(
        self,
        url: str,
        *,
        connect_args: dict[str, Any] | None = None,
        sqlite_synchronous: SqliteSynchronous = "NORMAL",
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"connect_args": connect_args or {}}
        if self.is_sqlite:
            path = make_url(url).database or ""
            # Statements run inline (db/sqlite_inline.py): a connection is held only while its statements run
            # or its transaction is open, so a few suffice; a fixed pool never closes and reopens them.
            kwargs.update(
                async_creator=inline_connector(path, busy_timeout_ms=SQLITE_BUSY_TIMEOUT_MS),
                pool_size=8,
                max_overflow=0,
            )
        else:
            # No pre-ping (a round trip before every checkout): `_drop_closed_connections` checks liveness
            # locally instead, and a single-statement read that still meets a dead connection is retried.
            kwargs.update(pool_size=10, max_overflow=20)
        self.engine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _make_sqlite_writes_immediate(self.engine, sqlite_synchronous)
            self._statements: AsyncEngine = self.engine.execution_options(**{_SINGLE_STATEMENT: True})
        else:
            _drop_closed_connections(self.engine)
            # Single statements on PostgreSQL: autocommit, so no BEGIN and COMMIT around the statement (one
            # round trip per read, where a session costs three). Same pool as every other use.
            self._statements = self.engine.execution_options(isolation_level="AUTOCOMMIT")
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

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection for single read statements, each its own transaction: the hot reads (a task, a key).
        Never for work of several statements that must agree (use `read` or `transaction`)."""
        async with self._statements.connect() as connection:
            yield connection

    async def read_statement(self, run: Any) -> Any:
        """`run(connection)` on a statement connection, retried once on a fresh connection when the one it got
        was dead (PostgreSQL restarted since): a read has no effect to repeat."""
        try:
            async with self.statement() as connection:
                return await run(connection)
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
        async with self.statement() as connection:
            return await run(connection)

    async def dispose(self) -> None:
        await self.engine.dispose()
