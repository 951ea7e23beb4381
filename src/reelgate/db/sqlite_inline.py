"""SQLite on the event loop's own thread: an aiosqlite-shaped connection whose calls run `sqlite3` inline.

Why: aiosqlite runs every call (cursor, execute, fetch, close, commit) on a thread of its own and hands the
result back through the loop: four thread hand-offs per statement, each waiting for the GIL. Profiled under
load (docs/benchmarks.md), those hand-offs were most of an authenticated request's 5-7 ms, where the
statements themselves (an indexed lookup in a WAL database this process has open) take microseconds. So the
statements run where the coroutine runs, and SQLAlchemy's aiosqlite dialect drives this class unchanged.

What could block the loop, and why it does not:
- Waiting for a lock. The connection's busy timeout is 0, so SQLite answers SQLITE_BUSY at once instead of
  sleeping in C; the call is retried after an `asyncio.sleep` (growing to 20 ms) for up to
  `SQLITE_BUSY_TIMEOUT_MS`, so other requests run while a writer of another process holds the lock. A failed
  statement changed nothing (SQLite rolls a statement back as a whole), so the retry is safe; our write
  transactions take the lock up front (BEGIN IMMEDIATE), so BUSY comes at BEGIN, before anything was done.
- Long statements. Every statement of the service is an indexed point read or write or a bounded page; the
  sweeps and audits read in chunks (`_IDS_PER_QUERY`).
- Durability work. A commit in WAL mode with synchronous=NORMAL writes the WAL without fsync; FULL adds one
  fsync per commit (REELGATE_SQLITE_SYNCHRONOUS, docs/benchmarks.md says what it costs here).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

_FIRST_WAIT_S = 0.001
_MAX_WAIT_S = 0.02


def _is_busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    text = str(error).lower()
    return "locked" in text or "busy" in text


async def retrying(call: Callable[[], T], busy_timeout_s: float) -> T:
    deadline: float | None = None
    wait_s = _FIRST_WAIT_S
    while True:
        try:
            return call()
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
            now = time.monotonic()
            deadline = deadline if deadline is not None else now + busy_timeout_s
            if now >= deadline:
                raise
            await asyncio.sleep(wait_s)
            wait_s = min(wait_s * 2, _MAX_WAIT_S)


class InlineCursor:
    def __init__(self, cursor: sqlite3.Cursor, busy_timeout_s: float) -> None:
        self._cursor = cursor
        self._busy_timeout_s = busy_timeout_s

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_args: object) -> None:
        self._cursor.close()

    async def execute(self, operation: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> InlineCursor:
        await retrying(lambda: self._cursor.execute(operation, parameters), self._busy_timeout_s)
        return self

    async def executemany(self, operation: str, parameters: Iterable[Sequence[Any]]) -> InlineCursor:
        rows = list(parameters)
        await retrying(lambda: self._cursor.executemany(operation, rows), self._busy_timeout_s)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def setinputsizes(self, *_sizes: Any) -> None:
        return None

    async def nextset(self) -> None:
        return None


class _Immediate:
    """What SQLAlchemy's adapter reaches for to set `isolation_level` (aiosqlite's private queue): run it now."""

    def __init__(self) -> None:
        pass

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as error:
            if future is not None:
                future.set_exception(error)
            return
        if future is not None:
            future.set_result(result)


class InlineConnection:
    """The part of aiosqlite's Connection that SQLAlchemy's aiosqlite dialect uses, run inline."""

    def __init__(self, connection: sqlite3.Connection, busy_timeout_s: float) -> None:
        self._conn = connection
        self._connection: sqlite3.Connection | None = connection
        self._busy_timeout_s = busy_timeout_s
        self._tx = _Immediate()

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        # Like aiosqlite's: SQLAlchemy enters it (`async with`) rather than awaiting it.
        return InlineCursor(self._conn.cursor(), self._busy_timeout_s)

    async def execute(self, operation: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> InlineCursor:
        return await self.cursor().execute(operation, parameters)

    async def commit(self) -> None:
        await retrying(self._conn.commit, self._busy_timeout_s)

    async def rollback(self) -> None:
        self._conn.rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def close(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()


def inline_connector(path: str, *, busy_timeout_ms: int) -> Callable[[], Any]:
    """An `async_creator` for `create_async_engine`: a new inline connection to the database file at `path`."""

    async def connect() -> InlineConnection:
        # check_same_thread off: a connection is used by one coroutine at a time (the pool's checkout), but
        # the loop that runs it may change between uses (tests run the app in a client's thread).
        connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA busy_timeout=0")
        return InlineConnection(connection, busy_timeout_ms / 1000)

    return connect
