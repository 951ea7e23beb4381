"""The async database handle: one engine per process, transactions owned by the caller."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import namedtuple
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from sqlalchemy import JSON, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from reelgate.db.notify import WAKEUPS_INFO, Wakeups
from reelgate.db.point_reads import PointReader, PostgresPointReader, SqlitePointReader
from reelgate.db.sqlite_inline import inline_connector

SQLITE_BUSY_TIMEOUT_MS = 30_000
# The most PostgreSQL connections a process opens for point reads, beside the engine's pool.
POINT_READ_CONNECTIONS = 4
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


class PointRead:
    """A single-row read run on a driver connection of its own (db/point_reads.py), its SQL compiled once per
    dialect.

    Why: through SQLAlchemy's Core, a point read spends most of its CPU in statement machinery (cache keys,
    parameter processing, result metadata), several times what SQLite takes to answer it
    (docs/benchmarks.md, the profile). The hot reads (a task, a key, the key counter) are a handful of fixed
    statements, so each is compiled here once and sent as is; the row keeps the column names as attributes,
    like a Core row. JSON columns are decoded here on SQLite (asyncpg decodes them itself, with the codec
    the point reader installs on its connections)."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._compiled: dict[str, tuple[str, tuple[str, ...], dict[str, Any], type[Any], tuple[int, ...]]] = {}

    def compiled_for(self, dialect: Any) -> tuple[str, tuple[str, ...], dict[str, Any], type[Any], tuple[int, ...]]:
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            columns = list(self.statement.selected_columns)
            # rename: a join may select two columns of one name (read those by position).
            row_type = namedtuple("PointRow", [column.key for column in columns], rename=True)  # type: ignore[misc]
            json_at = tuple(i for i, column in enumerate(columns) if isinstance(column.type, JSON))
            # Literals of the statement are bound parameters too: their values are the compiled defaults.
            found = (str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params), row_type, json_at)
            self._compiled[dialect.name] = found
        return found


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
        self._point_reader: PointReader
        if self.is_sqlite:
            _make_sqlite_writes_immediate(self.engine, sqlite_synchronous)
            self._point_reader = SqlitePointReader(
                make_url(url).database or "", busy_timeout_s=SQLITE_BUSY_TIMEOUT_MS / 1000
            )
        else:
            _drop_closed_connections(self.engine)
            # Single statements, autocommit (no BEGIN and COMMIT: one round trip per read), on connections of
            # their own: at most POINT_READ_CONNECTIONS more per process than the engine's pool.
            self._point_reader = PostgresPointReader(
                make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
                server_settings=(connect_args or {}).get("server_settings"),
                max_size=POINT_READ_CONNECTIONS,
            )
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

    async def point_read(self, query: PointRead, params: dict[str, Any]) -> Any | None:
        """The one row `query` finds with `params` (None if none), in one statement of its own."""
        sql, names, defaults, row_type, json_at = query.compiled_for(self.engine.dialect)
        values = [params[name] if name in params else defaults[name] for name in names]
        row = await self._point_reader.fetchrow(sql, values)
        if row is None:
            return None
        fields = list(row)
        if self.is_sqlite:
            for index in json_at:
                if fields[index] is not None:
                    fields[index] = json.loads(fields[index])
        return row_type(*fields)

    async def dispose(self) -> None:
        await self._point_reader.close()
        await self.engine.dispose()
