"""The async database handle: one engine per process, transactions owned by the caller."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from reelgate.db.driver import Driver, PostgresDriver, SqliteDriver, Statement, Transaction
from reelgate.db.notify import WAKEUPS_INFO, Wakeups
from reelgate.db.sqlite_inline import inline_connector

SQLITE_BUSY_TIMEOUT_MS = 30_000
# The PostgreSQL connections a process opens for its hot statements, beside the engine's pool. Four keep one
# process's polls and creates fed (a poll holds one for a round trip, a create for a few: more than one
# Python process can serve); more only added server processes competing for the cores (docs/benchmarks.md:
# 10 gave 0.31 of the bare app's polls here, 4 gave 0.45).
DRIVER_CONNECTIONS = 4
_READ_ONLY = "reelgate_read_only"
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
        else:
            _drop_closed_connections(self.engine)
        # The in-process subscribers of wake-ups (db/notify.py): one set per database handle, not per module,
        # so several services in one process (tests) never wake each other.
        self.wakeups = Wakeups()
        # The hot statements' own connections (db/driver.py); on PostgreSQL at most DRIVER_CONNECTIONS more
        # per process than the engine's pool.
        self._driver: Driver
        if self.is_sqlite:
            self._driver = SqliteDriver(
                make_url(url).database or "",
                dialect=self.engine.dialect,
                wakeups=self.wakeups,
                busy_timeout_s=SQLITE_BUSY_TIMEOUT_MS / 1000,
                synchronous=sqlite_synchronous,
            )
        else:
            self._driver = PostgresDriver(
                make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
                dialect=self.engine.dialect,
                wakeups=self.wakeups,
                server_settings=(connect_args or {}).get("server_settings"),
                max_size=DRIVER_CONNECTIONS,
            )
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

    async def point_read(self, statement: Statement, params: dict[str, Any]) -> Any | None:
        """The one row `statement` finds with `params` (None if none), in one statement of its own."""
        return await self._driver.fetchone(statement, params)

    async def rows_read(self, statement: Statement, params: dict[str, Any]) -> list[Any]:
        """Every row `statement` finds with `params`, in one statement of its own (a page of a hot list)."""
        return await self._driver.fetchall(statement, params)

    def driver_transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """One unit of work of fixed `Statement`s on the driver's own connection (db/driver.py), for the hot
        writes: committed when the block ends, rolled back if it raises. Its wake-ups are sent at commit."""
        return self._driver.transaction()

    async def dispose(self) -> None:
        await self._driver.close()
        await self.engine.dispose()
