"""The hot statements' own connections (db/driver.py): a driver transaction is all or nothing, its wake-ups
leave only when it commits, JSON values survive the trip, point reads see every commit, a batch means the same
on both databases, and on SQLite a transaction waits for another process's write lock without stopping the
event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import Table, bindparam, func, insert, select, update

from reelgate.db import migrate
from reelgate.db.database import DRIVER_CONNECTIONS, Database
from reelgate.db.driver import Batch, Notify, Statement
from reelgate.db.models import Account, WorkerToken
from reelgate.resources import database_for
from tests.conftest import POSTGRES_URL, Backend, make_settings

# A table with a JSON column and no foreign key, written and read through fixed statements.
_TABLE = WorkerToken.__table__
assert isinstance(_TABLE, Table)
_COLUMNS = ("id", "name", "secret_hash", "engines", "created_at")
_INSERT = Statement(insert(_TABLE).inline(), column_keys=_COLUMNS)
_READ = Statement(select(WorkerToken.name, WorkerToken.engines).where(WorkerToken.id == bindparam("token")))
_RENAME = Statement(update(_TABLE).where(_TABLE.c.secret_hash == bindparam("hash")).values(name=bindparam("new_name")))


_WAKE = Batch(Notify("things"))
_COUNT = Statement(select(func.count()).select_from(WorkerToken).where(WorkerToken.secret_hash == bindparam("hash")))
_ACCOUNTS = Account.__table__
assert isinstance(_ACCOUNTS, Table)
_CREDIT = Statement(
    update(_ACCOUNTS).where(_ACCOUNTS.c.id == bindparam("account")).values(balance_millicredits=bindparam("amount"))
)


def _row(token_id: str, engines: object = None) -> dict[str, object]:
    return {"id": token_id, "name": "first", "secret_hash": "h", "engines": engines, "created_at": time.time()}


async def _database(tmp_path: Path, backend: Backend) -> Database:
    db = database_for(make_settings(tmp_path / "home", backend))
    await migrate.upgrade(db)
    return db


def test_a_transaction_commits_all_or_nothing_and_wakes_only_on_commit(tmp_path: Path, backend: Backend) -> None:
    async def scenario() -> None:
        db = await _database(tmp_path, backend)
        woken = asyncio.Event()
        unsubscribe = db.wakeups.subscribe("things", woken)
        try:
            with pytest.raises(RuntimeError, match="midway"):
                async with db.driver_transaction() as transaction:
                    await transaction.execute(_INSERT, _row("a"))
                    await transaction.run_batch(_WAKE, [{}])
                    raise RuntimeError("midway")
            assert await db.point_read(_READ, {"token": "a"}) is None
            await asyncio.sleep(0.05)  # a wake-up is set on the loop's next turns (call_soon_threadsafe)
            assert not woken.is_set()

            engines = ["motion", "naïve ✓", 'kling "quoted"']
            async with db.driver_transaction() as transaction:
                await transaction.execute(_INSERT, _row("a", engines))
                await transaction.execute(_INSERT, _row("b"))
                assert await transaction.execute(_RENAME, {"hash": "h", "new_name": "renamed"}) == 2
                assert await transaction.execute(_RENAME, {"hash": "other", "new_name": "x"}) == 0
                await asyncio.sleep(0.05)
                assert not woken.is_set()  # not before the commit
                assert await transaction.run_batch(_WAKE, [{}]) == [None]
                seen = await transaction.fetchone(_READ, {"token": "a"})
                assert seen is not None and seen.name == "renamed"
            await asyncio.wait_for(woken.wait(), timeout=5)
            row = await db.point_read(_READ, {"token": "a"})
            assert row is not None and row.engines == engines and row.name == "renamed"
            # What the driver wrote, the engine's sessions read (the same JSON as SQLAlchemy's own).
            async with db.read() as session:
                stored = await session.get(WorkerToken, "a")
                assert stored is not None and stored.engines == engines
        finally:
            unsubscribe()
            await db.dispose()

    asyncio.run(scenario())


def test_a_batch_is_one_unit_whose_members_see_the_database_as_before_it(tmp_path: Path, backend: Backend) -> None:
    # On PostgreSQL one statement of data-modifying CTEs, on SQLite the members in turn: the same answers.
    batch = Batch(_COUNT, _INSERT, Notify("things"), _CREDIT)

    async def scenario() -> None:
        db = await _database(tmp_path, backend)
        woken = asyncio.Event()
        unsubscribe = db.wakeups.subscribe("things", woken)
        try:
            async with db.driver_transaction() as transaction:
                await transaction.execute(_INSERT, _row("a"))
            params = [{"hash": "h"}, _row("b", ["motion"]), {}, {"account": "nobody", "amount": 5}]
            with pytest.raises(RuntimeError, match="midway"):
                async with db.driver_transaction() as transaction:
                    assert await transaction.run_batch(batch, params) == [1, 1, None, 0]
                    raise RuntimeError("midway")
            assert await db.point_read(_READ, {"token": "b"}) is None
            await asyncio.sleep(0.05)
            assert not woken.is_set()  # a rolled-back batch wakes no one

            async with db.driver_transaction() as transaction:
                # The count is of the rows before the batch: the insert's is not among them, on either database.
                assert await transaction.run_batch(batch, params) == [1, 1, None, 0]
                await asyncio.sleep(0.05)
                assert not woken.is_set()  # not before the commit
            await asyncio.wait_for(woken.wait(), timeout=5)
            row = await db.point_read(_READ, {"token": "b"})
            assert row is not None and row.engines == ["motion"]
        finally:
            unsubscribe()
            await db.dispose()

    asyncio.run(scenario())


def test_a_batch_whose_meaning_would_differ_between_the_databases_is_refused() -> None:
    # A read after a write of its table would see the write on SQLite (in turn) but not on PostgreSQL (one
    # snapshot); two writes of one table would run in an undefined order on PostgreSQL.
    with pytest.raises(ValueError, match="worker_tokens"):
        Batch(_INSERT, _COUNT)
    with pytest.raises(ValueError, match="worker_tokens"):
        Batch(_INSERT, _RENAME)
    Batch(_COUNT, _INSERT, _CREDIT)  # a read before the writes of its table is the same on both


def test_an_error_raised_in_a_transaction_keeps_its_connection(tmp_path: Path, postgres_backend: Backend) -> None:
    """A create refused inside its transaction (a 402 or a 429 raised between statements) rolls back and gives
    its connection back, as a statement's error does: closing it made the next create open a connection (a new
    server process) for each refusal."""

    async def scenario() -> None:
        db = await _database(tmp_path, postgres_backend)
        try:
            pids = {(await db.point_read(_BACKEND, {})).pid for _ in range(DRIVER_CONNECTIONS * 2)}
            for index in range(DRIVER_CONNECTIONS * 2):
                with pytest.raises(RuntimeError, match="refused"):
                    async with db.driver_transaction() as transaction:
                        await transaction.execute(_INSERT, _row(f"refused-{index}"))
                        raise RuntimeError("refused")
                with pytest.raises(asyncpg.UniqueViolationError):
                    async with db.driver_transaction() as transaction:
                        await transaction.execute(_INSERT, _row(f"twice-{index}"))
                        await transaction.execute(_INSERT, _row(f"twice-{index}"))
            assert {(await db.point_read(_BACKEND, {})).pid for _ in range(DRIVER_CONNECTIONS * 2)} == pids
            assert await db.point_read(_READ, {"token": "refused-0"}) is None
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_point_reads_see_what_other_connections_commit(tmp_path: Path, backend: Backend) -> None:
    async def scenario() -> None:
        db = await _database(tmp_path, backend)
        try:
            assert await db.point_read(_READ, {"token": "c"}) is None
            for name in ("first", "second", "third"):
                async with db.transaction() as session:
                    existing = await session.get(WorkerToken, "c")
                    if existing is None:
                        session.add(WorkerToken(**_row("c")))
                    else:
                        existing.name = name
                row = await db.point_read(_READ, {"token": "c"})
                assert row is not None and row.name == name
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_a_sqlite_transaction_waits_for_another_writer_without_blocking_the_loop(
    tmp_path: Path, sqlite_backend: Backend
) -> None:
    async def scenario() -> None:
        db = await _database(tmp_path, sqlite_backend)
        path = str(db.engine.url.database)
        holding, release = threading.Event(), threading.Event()

        def other_process_writes() -> None:
            # Another writer of the same file (as another process would be) holds the write lock for 0.5 s.
            connection = sqlite3.connect(path, isolation_level=None)
            connection.execute("BEGIN IMMEDIATE")
            holding.set()
            release.wait(5)
            time.sleep(0.5)
            connection.execute("COMMIT")
            connection.close()

        writer = threading.Thread(target=other_process_writes)
        writer.start()
        try:
            assert holding.wait(5)
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            ticker = asyncio.create_task(tick())
            release.set()
            started = time.monotonic()
            async with db.driver_transaction() as transaction:
                await transaction.execute(_INSERT, _row("d"))
            waited = time.monotonic() - started
            ticker.cancel()
            assert waited >= 0.4  # it did wait for the lock...
            assert ticks >= 10  # ...while the loop kept running other coroutines
            assert await db.point_read(_READ, {"token": "d"}) is not None
        finally:
            release.set()
            writer.join()
            await db.dispose()

    asyncio.run(scenario())


_BACKEND = Statement(select(func.pg_backend_pid().label("pid")))
_SLEEP = Statement(select(func.pg_sleep(bindparam("seconds")).label("slept")))


def test_postgres_connections_that_die_or_fail_are_replaced(tmp_path: Path, postgres_backend: Backend) -> None:
    """The hot statements' few connections survive what happens to a connection in use: the server ending it,
    a statement error in a transaction, a read cancelled mid-flight. None of them leaks a slot."""

    async def scenario() -> None:
        db = await _database(tmp_path, postgres_backend)
        admin = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg", "postgresql"))
        try:
            for _ in range(5):  # a server restart: every connection ends, and reads go on at once
                pids = {(await db.point_read(_BACKEND, {})).pid for _ in range(DRIVER_CONNECTIONS * 3)}
                await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", list(pids))
                for _ in range(DRIVER_CONNECTIONS * 3):  # each read finds a live connection or opens one
                    assert (await db.point_read(_BACKEND, {})).pid not in pids
                pids = {(await db.point_read(_BACKEND, {})).pid for _ in range(DRIVER_CONNECTIONS * 3)}
                await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", list(pids))
                for index in range(DRIVER_CONNECTIONS * 3):  # and so does each transaction's BEGIN
                    async with db.driver_transaction() as transaction:
                        await transaction.execute(_INSERT, _row(f"restart-{uuid.uuid4().hex[:16]}-{index}"))

            for _ in range(DRIVER_CONNECTIONS * 3):
                with pytest.raises(asyncpg.UniqueViolationError):
                    async with db.driver_transaction() as transaction:
                        await transaction.execute(_INSERT, _row("same"))
                        await transaction.execute(_INSERT, _row("same"))
            assert await db.point_read(_READ, {"token": "same"}) is None

            for _ in range(DRIVER_CONNECTIONS * 3):
                read = asyncio.create_task(db.point_read(_SLEEP, {"seconds": 5}))
                await asyncio.sleep(0.05)
                read.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await read
            async with asyncio.timeout(10):  # every slot came back: these do not wait for a lost one
                results = await asyncio.gather(*(db.point_read(_BACKEND, {}) for _ in range(DRIVER_CONNECTIONS)))
            assert len({row.pid for row in results}) == DRIVER_CONNECTIONS
        finally:
            await admin.close()
            await db.dispose()

    asyncio.run(scenario())
