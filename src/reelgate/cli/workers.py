"""`reelgate workers list`: the workers registry (who runs which engines, how busy, when last seen)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from reelgate.cli.common import console, settings, with_db

if TYPE_CHECKING:
    from reelgate.db.database import Database
    from reelgate.queue.schemas import WorkerList

workers_app = typer.Typer(help="The workers that claim tasks, and their engines.", no_args_is_help=True)


@workers_app.command("list")
def workers_list(as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False) -> None:
    """Every registered worker: host, engines (available or why not), running jobs, last seen."""
    from reelgate.queue.registry import list_workers

    current = settings()

    async def work(db: Database) -> WorkerList:
        return await list_workers(db, ttl_s=current.worker_ttl_s)

    listing = asyncio.run(with_db(current, work))
    if as_json:
        print(listing.model_dump_json())
        return
    table = Table("worker", "kind", "engines", "running", "last seen", "live")
    now = time.time()
    for worker in listing.data:
        engines = ", ".join(
            name if state.available else f"{name} (no: {state.reason})" for name, state in worker.engines.items()
        )
        table.add_row(
            worker.id,
            worker.kind,
            engines,
            f"{worker.running}/{worker.concurrency}",
            f"{now - worker.last_seen:.0f} s ago",
            "yes" if worker.live else "no",
        )
    console.print(table)
    live = ", ".join(f"{name}: {count}" for name, count in sorted(listing.live_by_engine.items())) or "none"
    console.print(f"live workers per engine: {live}")
