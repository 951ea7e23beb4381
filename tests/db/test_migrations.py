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
