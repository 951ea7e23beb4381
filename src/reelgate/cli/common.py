"""What every `reelgate` command shares: the consoles, failing with a message, the settings and a migrated
database. Heavy modules (SQLAlchemy, FastAPI) are imported inside the commands that use them, so a command
such as `reelgate generate` starts without them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console

from reelgate.config import Settings

if TYPE_CHECKING:
    from reelgate.db.database import Database

console = Console()
err = Console(stderr=True)

T = TypeVar("T")


def fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


def settings() -> Settings:
    return Settings()


async def with_db(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    from reelgate.db import migrate
    from reelgate.resources import database_for

    db = database_for(settings)
    try:
        if not await migrate.is_current(db):
            raise fail("the database schema is not current: run 'reelgate migrate' first")
        return await work(db)
    finally:
        await db.dispose()
