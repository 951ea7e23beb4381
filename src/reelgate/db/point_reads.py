"""Connections of their own for single-statement reads (`Database.point_read`), outside SQLAlchemy's pool.

Why: a poll is one indexed read, and taking a connection from SQLAlchemy's async pool costs more than the
read (a greenlet hand-off, the pool's checkout and return events, its connection wrappers: a fifth of a
poll's CPU in the profile of docs/benchmarks.md). These readers hold driver connections directly:

- SQLite: one `sqlite3` connection, used inline on the event loop's thread like the pool's
  (db/sqlite_inline.py, whose busy-retry it shares). One suffices: an inline statement runs to its end
  before another coroutine runs. It is `query_only` (a write through it is refused by SQLite) and in
  autocommit, so it holds no snapshot between statements and never delays a checkpoint.
- PostgreSQL: a small asyncpg pool with the same DSN, search path and JSON decoding as the engine's
  connections; asyncpg prepares each statement once per connection and reuses it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol

import asyncpg

from reelgate.db.sqlite_inline import retrying

# Exceptions that mean the server or the connection went away (a restart): a read has no effect to repeat.
LOST_CONNECTION = (OSError, asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError)


class PointReader(Protocol):
    async def fetchrow(self, sql: str, values: Sequence[Any]) -> Sequence[Any] | None: ...

    async def close(self) -> None: ...


class SqlitePointReader:
    def __init__(self, path: str, *, busy_timeout_s: float) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        # check_same_thread off for the same reason as the pool's (tests run an app in a client's thread);
        # timeout 0: waiting for a lock is `retrying`'s, between event-loop turns, never SQLite's sleep.
        connection = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None, timeout=0)
        connection.execute("PRAGMA query_only=ON")
        return connection

    async def fetchrow(self, sql: str, values: Sequence[Any]) -> Sequence[Any] | None:
        if self._connection is None:
            self._connection = self._connect()
        connection = self._connection

        def read() -> Any:
            cursor = connection.execute(sql, values)
            try:
                return cursor.fetchone()
            finally:
                cursor.close()

        row: Sequence[Any] | None = await retrying(read, self._busy_timeout_s)
        return row

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


async def _decode_json(connection: asyncpg.Connection) -> None:
    # As SQLAlchemy's asyncpg dialect does on its own connections: JSON columns arrive decoded.
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class PostgresPointReader:
    def __init__(self, dsn: str, *, server_settings: dict[str, str] | None, max_size: int) -> None:
        self._dsn = dsn
        self._server_settings = server_settings
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _opened(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=1,
                        max_size=self._max_size,
                        server_settings=self._server_settings,
                        init=_decode_json,
                    )
        return self._pool

    async def fetchrow(self, sql: str, values: Sequence[Any]) -> Sequence[Any] | None:
        pool = await self._opened()
        for attempt in range(2):
            try:
                row: Sequence[Any] | None = await pool.fetchrow(sql, *values)
                return row
            except LOST_CONNECTION:
                # The pool drops a connection that failed; once more on a fresh one.
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
