"""Schema migrations (Alembic), run on the service's own engine.

Several processes may start at once against one PostgreSQL (API replicas, workers): an advisory lock makes
them take turns. On SQLite the IMMEDIATE transaction does the same.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from reelgate.db.database import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Arbitrary but fixed: "reelgate" in ASCII, truncated to fit a bigint.
_ADVISORY_LOCK_ID = 0x7265656C67617465


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
    command.upgrade(_config(connection), "head")


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(database: Database) -> None:
    async with database.engine.begin() as connection:
        await connection.run_sync(_upgrade)


async def current_revision(database: Database) -> str | None:
    async with database.engine.connect() as connection:
        return await connection.run_sync(_current)


async def is_current(database: Database) -> bool:
    return await current_revision(database) == head_revision()
