"""Migrations on both databases: from nothing to head, idempotent, reversible, and matching the models."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from reelgate.db import migrate
from reelgate.db.models import Base
from reelgate.resources import database_for
from tests.conftest import Backend, make_settings


def test_upgrade_is_idempotent_and_matches_models(tmp_path: Path, backend: Backend) -> None:
    settings = make_settings(tmp_path / "home", backend)

    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection)
        return list(compare_metadata(context, Base.metadata))

    def tables(connection: Connection) -> set[str]:
        return set(inspect(connection).get_table_names())

    async def scenario() -> None:
        db = database_for(settings)
        try:
            assert await migrate.current_revision(db) is None
            assert not await migrate.is_current(db)
            await migrate.upgrade(db)
            await migrate.upgrade(db)  # a second run changes nothing
            assert await migrate.current_revision(db) == migrate.head_revision()
            async with db.engine.connect() as connection:
                assert {"api_keys", "tasks"} <= await connection.run_sync(tables)
                assert await connection.run_sync(differences) == []
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_concurrent_migrations_are_serialised(tmp_path: Path, backend: Backend) -> None:
    settings = make_settings(tmp_path / "home", backend)

    async def scenario() -> None:
        dbs = [database_for(settings) for _ in range(3)]
        try:
            await asyncio.gather(*(migrate.upgrade(db) for db in dbs))
            assert await migrate.is_current(dbs[0])
        finally:
            for db in dbs:
                await db.dispose()

    asyncio.run(scenario())


def test_0003_gives_each_existing_key_an_account_with_its_balance(tmp_path: Path, backend: Backend) -> None:
    """A key from before accounts keeps its credits (as a grant) and its unsettled holds (as reserves)."""
    from alembic import command
    from sqlalchemy import text

    from reelgate.tasks.audit import audit

    settings = make_settings(tmp_path / "home", backend)

    def upgrade_to(connection: Connection, revision: str) -> None:
        config = migrate._config(connection)
        command.upgrade(config, revision)

    async def scenario() -> None:
        db = database_for(settings)
        try:
            async with db.engine.begin() as connection:
                await connection.run_sync(upgrade_to, "0002")
                await connection.execute(
                    text(
                        "INSERT INTO api_keys (id, name, secret_hash, balance_millicredits, user_group, created_at) "
                        "VALUES ('k1', 'old', 'h', 7000, 'vip', 1)"
                    )
                )
                await connection.execute(
                    text(
                        "INSERT INTO tasks (id, api_key_id, model, engine, prompt, image_urls, duration_s, seed, "
                        "status, progress, estimated_time_s, attempt, max_attempts, available_at, created_at, "
                        "updated_at, result_info, billing_rule, user_group, credits_reserved_millicredits, "
                        "credits_state) VALUES ('t1', 'k1', 'm', 'motion', 'p', '[]', 5, 1, 'pending', 0, 0, 0, 3, "
                        "1, 1, 1, '{}', 'per_second', 'vip', 5000, 'held')"
                    )
                )
            await migrate.upgrade(db)
            async with db.read() as session:
                row = (
                    await session.execute(
                        text(
                            "SELECT a.balance_millicredits, a.held_millicredits, a.user_group FROM accounts a "
                            "JOIN api_keys k ON k.account_id = a.id WHERE k.id = 'k1'"
                        )
                    )
                ).one()
                assert tuple(row) == (12000, 5000, "vip")
                report = await audit(session)
                assert report.ok, report.problems
                assert report.tasks_checked == 1
        finally:
            await db.dispose()

    asyncio.run(scenario())
