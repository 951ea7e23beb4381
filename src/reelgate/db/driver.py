"""The hot statements on driver connections of their own, outside SQLAlchemy's pool and sessions.

Why: a poll is one indexed read and a create one short transaction, and SQLAlchemy's machinery around each
statement (the async pool's checkout and greenlet hand-off, cache keys, parameter processing, result
metadata, the session's begin and commit) cost several times what the database takes to run them (the
profiles in docs/benchmarks.md). The statements of those paths are a handful of fixed `Statement`s, each
compiled once per dialect by SQLAlchemy and sent here as is.

- SQLite: two `sqlite3` connections used inline on the event loop's thread, like the pool's
  (db/sqlite_inline.py, whose busy-retry they share): a `query_only` one in autocommit for point reads (it
  holds no snapshot between statements, so it never delays a checkpoint; one suffices, as an inline statement
  runs to its end before another coroutine runs) and a writer for `transaction()`, one transaction at a time
  in the process (SQLite has one writer anyway), each `BEGIN IMMEDIATE`.
- PostgreSQL: a few asyncpg connections (`_Connections`) with the engine's DSN, search path and JSON codec;
  asyncpg prepares each statement once per connection.

Wake-ups (db/notify.py), a `Notify` member of a batch, are delivered here once its transaction commits, and
on PostgreSQL sent with `pg_notify` inside it, as `notify` does for a session.

A `Batch` is several such statements run as one: on PostgreSQL one statement of data-modifying CTEs (one round
trip, where each asyncpg round trip was about a twentieth of a create's CPU: docs/benchmarks.md), on SQLite the
statements in turn (inline calls, no round trips to save).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import sqlite3
from collections import namedtuple
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, cast

import asyncpg
import orjson
from sqlalchemy import JSON
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.util import find_tables

from reelgate.db.notify import Wakeups
from reelgate.db.sqlite_inline import retrying

# Exceptions that mean the server or the connection went away (a restart, a terminated backend): a read has
# no effect to repeat. A connection the server ended may answer its next use with the server's goodbye (class
# 57, operator intervention; 08, connection exception) or, before asyncpg has read it, InternalClientError.
LOST_CONNECTION = (
    OSError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)


@dataclass(frozen=True)
class Compiled:
    sql: str
    names: tuple[str, ...]
    # Literals of the statement are bound parameters too: their values are the compiled defaults.
    defaults: dict[str, Any]
    row_type: type[Any] | None
    json_columns: tuple[int, ...]
    json_params: frozenset[str]

    def values(self, params: Mapping[str, Any], *, encode_json: bool) -> list[Any]:
        values = [params[name] if name in params else self.defaults[name] for name in self.names]
        if encode_json and self.json_params:
            for index, name in enumerate(self.names):
                if name in self.json_params and values[index] is not None:
                    values[index] = json.dumps(values[index])
        return values

    def row(self, found: Sequence[Any], *, decode_json: bool) -> Any:
        fields = list(found)
        if decode_json:
            for index in self.json_columns:
                if fields[index] is not None:
                    fields[index] = orjson.loads(fields[index])
        if self.row_type is None:
            return tuple(fields)
        return self.row_type(*fields)


class Statement:
    """A fixed Core statement, compiled once per dialect. The rows of a select keep the column names as
    attributes, like a Core row. On SQLite, JSON values are encoded and decoded here (asyncpg does both itself,
    with the codec installed on its connections)."""

    def __init__(self, statement: Any, *, column_keys: Sequence[str] | None = None) -> None:
        """`column_keys`: for an INSERT, the columns it is given (by default every column of the table)."""
        self.statement = statement
        self._column_keys = list(column_keys) if column_keys is not None else None
        self._compiled: dict[str, Compiled] = {}

    def compiled_for(self, dialect: Any) -> Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=self._column_keys)
            columns = list(getattr(self.statement, "selected_columns", ()))
            # rename: a join may select two columns of one name (read those by position).
            row_type = namedtuple("Row", [column.key for column in columns], rename=True) if columns else None
            found = Compiled(
                sql=str(compiled),
                names=tuple(compiled.positiontup or ()),
                defaults=dict(compiled.params),
                row_type=row_type,
                json_columns=tuple(i for i, column in enumerate(columns) if isinstance(column.type, JSON)),
                json_params=frozenset(name for name, bind in compiled.binds.items() if isinstance(bind.type, JSON)),
            )
            self._compiled[dialect.name] = found
        return found


@dataclass(frozen=True)
class Notify:
    """A member of a `Batch`: wake `channel`'s listeners once the transaction commits (on PostgreSQL with
    `pg_notify` inside it, which the server sends to other processes' listeners at commit, db/notify.py)."""

    channel: str


_PLACEHOLDER = re.compile(r"\$(\d+)")


def _renumbered(placeholder: re.Match[str], *, offset: int) -> str:
    return f"${int(placeholder[1]) + offset}"


class Batch:
    """Fixed statements that one transaction runs together; `run_batch` answers, per member, the rows a write
    changed, the value of a read (its first column; None without a row) or None for a `Notify`.

    On PostgreSQL the members are one statement (writes as data-modifying CTEs), and every member sees the
    database as it was before the batch; on SQLite they run in the order given. So that both mean the same, a
    member may not read a table an earlier member writes, nor two members write one table (refused here);
    a read placed before the writes of its table sees the same on both."""

    def __init__(self, *members: Statement | Notify) -> None:
        self.members = members
        written: set[str] = set()
        for member in members:
            if isinstance(member, Notify):
                continue
            statement = member.statement
            target = str(getattr(statement.table, "name", "")) if isinstance(statement, UpdateBase) else ""
            read = {str(getattr(table, "name", "")) for table in find_tables(statement, include_crud=True)} - {target}
            if read & written or target in written:
                raise ValueError(f"a batch member uses a table an earlier member writes: {sorted(read | {target})}")
            if target:
                written.add(target)
        self._postgres: dict[str, tuple[str, tuple[Compiled | None, ...]]] = {}

    def postgres_sql(self, dialect: Any) -> tuple[str, tuple[Compiled | None, ...]]:
        """The one statement, and each member's compiled form (None for a Notify, whose value is its channel)."""
        found = self._postgres.get(dialect.name)
        if found is None:
            ctes: list[str] = []
            columns: list[str] = []
            compiled_members: list[Compiled | None] = []
            offset = 0
            for index, member in enumerate(self.members):
                if isinstance(member, Notify):
                    offset += 1
                    columns.append(f"(SELECT count(*) FROM pg_notify(${offset}::text, ''))")
                    compiled_members.append(None)
                    continue
                compiled = member.compiled_for(dialect)
                # Each member's own $1..$n, numbered after the previous members' parameters.
                sql = _PLACEHOLDER.sub(functools.partial(_renumbered, offset=offset), compiled.sql)
                offset += len(compiled.names)
                if isinstance(member.statement, UpdateBase):
                    ctes.append(f"m{index} AS ({sql} RETURNING 1)")
                    columns.append(f"(SELECT count(*) FROM m{index})")
                else:
                    columns.append(f"({sql})")
                compiled_members.append(compiled)
            with_clause = f"WITH {', '.join(ctes)} " if ctes else ""
            found = (f"{with_clause}SELECT {', '.join(columns)}", tuple(compiled_members))
            self._postgres[dialect.name] = found
        return found


class Transaction(Protocol):
    """One unit of work on a driver connection: committed when its block ends, rolled back if it raises."""

    async def execute(self, statement: Statement, params: Mapping[str, Any]) -> int:
        """Run a write; the number of rows it changed."""
        ...

    async def fetchone(self, statement: Statement, params: Mapping[str, Any]) -> Any | None: ...

    async def run_batch(self, batch: Batch, params: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Run `batch` with one mapping of parameters per member (an empty one for a Notify)."""
        ...


class Driver(Protocol):
    async def fetchone(self, statement: Statement, params: Mapping[str, Any]) -> Any | None:
        """The one row of a single-statement read (None if none), outside any transaction."""
        ...

    async def fetchall(self, statement: Statement, params: Mapping[str, Any]) -> list[Any]:
        """Every row of a single-statement read, outside any transaction."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...

    async def close(self) -> None: ...


class _SqliteTransaction:
    def __init__(self, connection: sqlite3.Connection, dialect: Any) -> None:
        self._connection = connection
        self._dialect = dialect
        self.channels: set[str] = set()

    def _run(self, statement: Statement, params: Mapping[str, Any]) -> tuple[Compiled, sqlite3.Cursor]:
        compiled = statement.compiled_for(self._dialect)
        # A statement inside BEGIN IMMEDIATE holds the write lock already: it is not answered SQLITE_BUSY.
        cursor = self._connection.execute(compiled.sql, compiled.values(params, encode_json=True))
        return compiled, cursor

    async def execute(self, statement: Statement, params: Mapping[str, Any]) -> int:
        _, cursor = self._run(statement, params)
        changed = cursor.rowcount
        cursor.close()
        return changed

    async def fetchone(self, statement: Statement, params: Mapping[str, Any]) -> Any | None:
        compiled, cursor = self._run(statement, params)
        found = cursor.fetchone()
        cursor.close()
        return None if found is None else compiled.row(found, decode_json=True)

    async def run_batch(self, batch: Batch, params: Sequence[Mapping[str, Any]]) -> list[Any]:
        results: list[Any] = []
        for member, values in zip(batch.members, params, strict=True):
            if isinstance(member, Notify):
                self.channels.add(member.channel)
                results.append(None)
            elif isinstance(member.statement, UpdateBase):
                results.append(await self.execute(member, values))
            else:
                row = await self.fetchone(member, values)
                results.append(None if row is None else row[0])
        return results


class SqliteDriver:
    def __init__(self, path: str, *, dialect: Any, wakeups: Wakeups, busy_timeout_s: float, synchronous: str) -> None:
        self._path = path
        self._dialect = dialect
        self._wakeups = wakeups
        self._busy_timeout_s = busy_timeout_s
        self._synchronous = synchronous
        self._reader: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None
        # One writer transaction at a time in this process; per event loop, as an asyncio.Lock belongs to one
        # (tests run apps on loops of their own).
        self._locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}

    def _connect(self) -> sqlite3.Connection:
        # check_same_thread off for the same reason as the pool's (tests run an app in a client's thread);
        # timeout 0: waiting for a lock is `retrying`'s, between event-loop turns, never SQLite's sleep.
        return sqlite3.connect(self._path, check_same_thread=False, isolation_level=None, timeout=0)

    async def fetchone(self, statement: Statement, params: Mapping[str, Any]) -> Any | None:
        compiled, found = await self._read(statement, params, sqlite3.Cursor.fetchone)
        return None if found is None else compiled.row(found, decode_json=True)

    async def fetchall(self, statement: Statement, params: Mapping[str, Any]) -> list[Any]:
        compiled, found = await self._read(statement, params, sqlite3.Cursor.fetchall)
        return [compiled.row(row, decode_json=True) for row in found]

    async def _read(
        self, statement: Statement, params: Mapping[str, Any], fetch: Callable[[sqlite3.Cursor], Any]
    ) -> tuple[Compiled, Any]:
        if self._reader is None:
            self._reader = self._connect()
            self._reader.execute("PRAGMA query_only=ON")
        connection = self._reader
        compiled = statement.compiled_for(self._dialect)
        values = compiled.values(params, encode_json=True)

        def read() -> Any:
            cursor = connection.execute(compiled.sql, values)
            try:
                return fetch(cursor)
            finally:
                cursor.close()

        return compiled, await retrying(read, self._busy_timeout_s)

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            for old in [known for known in self._locks if known.is_closed()]:
                del self._locks[old]
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._lock():
            if self._writer is None:
                self._writer = self._connect()
                self._writer.execute("PRAGMA foreign_keys=ON")
                self._writer.execute(f"PRAGMA synchronous={self._synchronous}")
            connection = self._writer
            await retrying(lambda: connection.execute("BEGIN IMMEDIATE"), self._busy_timeout_s)
            transaction = _SqliteTransaction(connection, self._dialect)
            try:
                yield transaction
            except BaseException:
                connection.rollback()
                raise
            try:
                await retrying(connection.commit, self._busy_timeout_s)
            except BaseException:
                connection.rollback()
                raise
        for channel in transaction.channels:
            self._wakeups.wake(channel)

    async def close(self) -> None:
        for connection in (self._reader, self._writer):
            if connection is not None:
                connection.close()
        self._reader = self._writer = None


class _PostgresTransaction:
    def __init__(self, connection: asyncpg.Connection, dialect: Any) -> None:
        self._connection = connection
        self._dialect = dialect
        self.channels: set[str] = set()

    async def execute(self, statement: Statement, params: Mapping[str, Any]) -> int:
        compiled = statement.compiled_for(self._dialect)
        status: str = await self._connection.execute(compiled.sql, *compiled.values(params, encode_json=False))
        # asyncpg answers the command tag, e.g. "UPDATE 1", "INSERT 0 1".
        return int(status.rsplit(" ", 1)[-1]) if status[-1:].isdigit() else 0

    async def fetchone(self, statement: Statement, params: Mapping[str, Any]) -> Any | None:
        compiled = statement.compiled_for(self._dialect)
        found = await self._connection.fetchrow(compiled.sql, *compiled.values(params, encode_json=False))
        return None if found is None else compiled.row(found, decode_json=False)

    async def run_batch(self, batch: Batch, params: Sequence[Mapping[str, Any]]) -> list[Any]:
        sql, compiled_members = batch.postgres_sql(self._dialect)
        values: list[Any] = []
        for member, compiled, member_params in zip(batch.members, compiled_members, params, strict=True):
            if compiled is None:
                values.append(cast(Notify, member).channel)
            else:
                values += compiled.values(member_params, encode_json=False)
        row = await self._connection.fetchrow(sql, *values)
        results: list[Any] = []
        for member, compiled, value in zip(batch.members, compiled_members, row, strict=True):
            if compiled is None:
                self.channels.add(cast(Notify, member).channel)
                results.append(None)
            else:
                results.append(value)
        return results


async def _json_codec(connection: asyncpg.Connection) -> None:
    # As SQLAlchemy's asyncpg dialect does on its own connections: JSON values travel as Python values.
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name, encoder=_json_text, decoder=orjson.loads, schema="pg_catalog", format="text"
        )


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


class _Connections:
    """Up to `size` asyncpg connections, each used by one coroutine at a time: a queue holding the idle ones and
    a `None` for each slot not yet (or no longer) connected. Not asyncpg's Pool, whose release shields a task
    and resets the session per use: a third of a point read's CPU, for connections that run fixed statements
    only (no LISTEN, SET, cursors or advisory locks: nothing to reset). A connection lost in use, or whose use
    was cancelled, is closed and its slot opened afresh at the next use; after any other error (a statement's,
    or one raised between statements) it is kept, rolled back."""

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], size: int) -> None:
        self._connect = connect
        self.size = size
        self._slots: asyncio.Queue[asyncpg.Connection | None] = asyncio.Queue()
        for _ in range(size):
            self._slots.put_nowait(None)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        found = await self._slots.get()
        if found is None or found.is_closed():
            try:
                found = await self._connect()
            except BaseException:
                self._slots.put_nowait(None)
                raise
        connection = found
        try:
            yield connection
        except BaseException as error:
            # A statement's error, or one the caller raised between statements (a create refused with a 402 or
            # a 429), leaves the connection usable (a transaction block rolls itself back first); a lost
            # connection or a cancellation (a BaseException, perhaps mid-statement) may not.
            usable = isinstance(error, Exception) and not isinstance(error, LOST_CONNECTION)
            if usable and not connection.is_closed() and not connection.is_in_transaction():
                self._slots.put_nowait(connection)
            else:
                connection.terminate()
                self._slots.put_nowait(None)
            raise
        self._slots.put_nowait(connection)

    async def close(self) -> None:
        while not self._slots.empty():
            connection = self._slots.get_nowait()
            if connection is not None and not connection.is_closed():
                await connection.close()


class PostgresDriver:
    def __init__(
        self, dsn: str, *, dialect: Any, wakeups: Wakeups, server_settings: dict[str, str] | None, max_size: int
    ) -> None:
        self._dsn = dsn
        self._dialect = dialect
        self._wakeups = wakeups
        self._server_settings = server_settings
        self._connections = _Connections(self._connect, max_size)

    async def _connect(self) -> asyncpg.Connection:
        connection = await asyncpg.connect(self._dsn, server_settings=self._server_settings)
        await _json_codec(connection)
        return connection

    async def fetchone(self, statement: Statement, params: Mapping[str, Any]) -> Any | None:
        compiled, found = await self._read(statement, params, asyncpg.Connection.fetchrow)
        return None if found is None else compiled.row(found, decode_json=False)

    async def fetchall(self, statement: Statement, params: Mapping[str, Any]) -> list[Any]:
        compiled, found = await self._read(statement, params, asyncpg.Connection.fetch)
        return [compiled.row(row, decode_json=False) for row in found]

    async def _read(
        self, statement: Statement, params: Mapping[str, Any], fetch: Callable[..., Awaitable[Any]]
    ) -> tuple[Compiled, Any]:
        compiled = statement.compiled_for(self._dialect)
        values = compiled.values(params, encode_json=False)
        # After a restart of the server every idle connection may be dead: each failed try closes one, so the
        # last of these tries opens a fresh one. A read has no effect to repeat.
        attempts = self._connections.size + 1
        for attempt in range(attempts):
            try:
                async with self._connections.connection() as connection:
                    return compiled, await fetch(connection, compiled.sql, *values)
            except LOST_CONNECTION:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        stack, connection, block = await self._begun()
        async with stack:  # gives the connection back, or closes it if the block raised
            transaction = _PostgresTransaction(connection, self._dialect)
            try:
                yield transaction
            except BaseException:
                with contextlib.suppress(*LOST_CONNECTION):
                    await block.rollback()
                raise
            await block.commit()
        for channel in transaction.channels:
            self._wakeups.wake(channel)

    async def _begun(self) -> tuple[contextlib.AsyncExitStack, asyncpg.Connection, Any]:
        """A connection with a transaction begun. A BEGIN that meets a connection the server ended (a
        restart) changed nothing, so it is tried again on the next one, as `fetchone` does."""
        attempts = self._connections.size + 1
        for attempt in range(attempts):
            stack = contextlib.AsyncExitStack()
            try:
                connection = await stack.enter_async_context(self._connections.connection())
                block = connection.transaction()
                await block.start()
            except LOST_CONNECTION as error:
                await stack.__aexit__(type(error), error, error.__traceback__)  # closes that connection
                if attempt == attempts - 1:
                    raise
                continue
            except BaseException as error:
                await stack.__aexit__(type(error), error, error.__traceback__)
                raise
            return stack, connection, block
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self._connections.close()
