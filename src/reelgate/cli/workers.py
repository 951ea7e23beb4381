"""`reelgate workers list`: the workers registry (who runs which engines, how busy, when last seen)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from reelgate.cli.common import console, fail, settings, with_db

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


tokens_app = typer.Typer(help="Worker tokens: what a remote worker (a GPU box anywhere) holds.", no_args_is_help=True)
workers_app.add_typer(tokens_app, name="tokens")


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(help="A name to recognise the token by")],
    engines: Annotated[
        str | None, typer.Option(help="Comma-separated engines its workers may claim (default: every engine)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Create a worker token; it is shown once and stored only as a hash."""
    from reelgate.accounts import service
    from reelgate.accounts.schemas import CreatedWorkerToken, CreateWorkerTokenRequest
    from reelgate.engines.registry import FACTORIES
    from reelgate.errors import ApiError

    current = settings()
    allowed = [engine.strip() for engine in engines.split(",") if engine.strip()] if engines is not None else None

    async def work(db: Database) -> CreatedWorkerToken:
        try:
            async with db.transaction() as session:
                return await service.create_worker_token(
                    session, CreateWorkerTokenRequest(name=name, engines=allowed), known_engines=list(FACTORIES)
                )
        except ApiError as exc:
            raise fail(f"--engines: {exc.message}" if exc.param == "engines" else exc.message) from None

    created = asyncio.run(with_db(current, work))
    if as_json:
        print(created.model_dump_json(exclude={"object"}))
        return
    scope = ", ".join(created.engines) if created.engines is not None else "every engine"
    console.print(f"created worker token [bold]{created.id}[/bold] ({created.name}) for {scope}; shown once:")
    print(created.token)
    console.print("run a remote worker with: reelgate worker --server https://YOUR-API --token TOKEN")


@tokens_app.command("list")
def tokens_list() -> None:
    """Every worker token (the tokens themselves are never stored)."""
    from reelgate.accounts import service
    from reelgate.accounts.schemas import WorkerTokenList

    current = settings()

    async def work(db: Database) -> WorkerTokenList:
        async with db.read() as session:
            return await service.worker_tokens(session)

    table = Table("id", "name", "engines", "status")
    for token in asyncio.run(with_db(current, work)).data:
        table.add_row(token.id, token.name, ", ".join(token.engines) if token.engines else "all", token.status)
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="The token id (rgw_<id>_...) or the whole token")],
) -> None:
    """Revoke a worker token: its workers stop at their next call, and their tasks go back to pending."""
    from reelgate.accounts import service
    from reelgate.errors import ApiError

    current = settings()
    parts = token_id.split("_")
    token_id = parts[1] if len(parts) == 3 and parts[0] == "rgw" else token_id

    async def work(db: Database) -> None:
        try:
            async with db.transaction() as session:
                await service.revoke_worker_token(session, token_id)
        except ApiError as exc:
            raise fail(exc.message) from None

    asyncio.run(with_db(current, work))
    console.print(f"revoked worker token [bold]{token_id}[/bold]")
