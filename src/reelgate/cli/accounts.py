"""`reelgate accounts ...` and `reelgate credits ...`: accounts, grants, the ledger and the audit."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from reelgate.cli.common import console, err, fail, with_db
from reelgate.config import Settings

if TYPE_CHECKING:
    from reelgate.accounts.schemas import AccountView, LedgerPage
    from reelgate.db.database import Database
    from reelgate.tasks.audit import AuditReport

accounts_app = typer.Typer(help="Accounts: who pays, and their user group.", no_args_is_help=True)
credits_app = typer.Typer(help="Grant credits, read the ledger, audit it.", no_args_is_help=True)


async def _view(db: Database, settings: Settings, account_id: str) -> AccountView:
    from reelgate.accounts import service
    from reelgate.resources import pricing_source

    async with db.read() as session:
        return await service.account_view_of(session, account_id, pricing=pricing_source(settings).current())


def _print_account(view: AccountView, as_json: bool) -> None:
    if as_json:
        print(view.model_dump_json())
        return
    console.print(
        f"account [bold]{view.id}[/bold] ({view.name}), group {view.user_group}: balance {view.balance:g}, "
        f"held {view.held:g}, available {view.available:g} credits"
    )
    for key in view.keys:
        console.print(f"  key {key.id} ({key.name}) {key.status}")


@accounts_app.command("create")
def accounts_create(
    name: Annotated[str, typer.Option(help="A name to recognise the account by")],
    group: Annotated[str, typer.Option(help="User group (pricing multiplier and limits)")] = "default",
    credits: Annotated[float, typer.Option(help="Starting credits (a grant entry)", min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Create an account; add keys to it with `reelgate keys create --account ID`."""
    from reelgate.accounts import service
    from reelgate.accounts.credits import to_millicredits

    settings = Settings()

    async def work(db: Database) -> AccountView:
        async with db.transaction() as session:
            account = await service.create_account(
                session, name=name, user_group=group, credits_millicredits=to_millicredits(credits)
            )
        return await _view(db, settings, account.id)

    _print_account(asyncio.run(with_db(settings, work)), as_json)


@accounts_app.command("show")
def accounts_show(
    account_id: Annotated[str, typer.Argument(help="The account id (acct_...)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """An account: balance, holds, group and keys."""
    from reelgate.errors import ApiError

    settings = Settings()

    async def work(db: Database) -> AccountView:
        try:
            return await _view(db, settings, account_id)
        except ApiError as exc:
            raise fail(exc.message) from None

    _print_account(asyncio.run(with_db(settings, work)), as_json)


@accounts_app.command("list")
def accounts_list() -> None:
    """Every account with its credits."""
    from reelgate.accounts import service
    from reelgate.resources import pricing_source

    settings = Settings()

    async def work(db: Database) -> list[AccountView]:
        async with db.read() as session:
            return await service.account_views(session, pricing=pricing_source(settings).current())

    table = Table("id", "name", "group", "balance", "held", "available", "keys")
    for view in asyncio.run(with_db(settings, work)):
        table.add_row(
            view.id,
            view.name,
            view.user_group,
            f"{view.balance:g}",
            f"{view.held:g}",
            f"{view.available:g}",
            str(len(view.keys)),
        )
    console.print(table)


@credits_app.command("grant")
def credits_grant(
    account_id: Annotated[str, typer.Argument(help="The account id (acct_...)")],
    credits: Annotated[float, typer.Argument(help="Credits to add", min=0)],
    note: Annotated[str | None, typer.Option(help="Why (kept in the ledger)")] = None,
) -> None:
    """Add credits to an account (a grant entry in the ledger)."""
    from reelgate.accounts import service
    from reelgate.accounts.credits import to_millicredits
    from reelgate.errors import ApiError

    settings = Settings()

    async def work(db: Database) -> AccountView:
        try:
            async with db.transaction() as session:
                await service.grant(session, account_id, to_millicredits(credits), note=note)
        except ApiError as exc:
            raise fail(exc.message) from None
        return await _view(db, settings, account_id)

    view = asyncio.run(with_db(settings, work))
    console.print(f"granted {credits:g} credits to [bold]{account_id}[/bold]: available {view.available:g}")


@credits_app.command("show")
def credits_show(
    account_id: Annotated[str, typer.Argument(help="The account id (acct_...)")],
    limit: Annotated[int, typer.Option(help="Entries to show, newest first", min=1)] = 50,
) -> None:
    """An account's credits and its latest ledger entries."""
    from reelgate.accounts import service
    from reelgate.errors import ApiError
    from reelgate.resources import pricing_source

    settings = Settings()

    async def work(db: Database) -> LedgerPage:
        try:
            async with db.read() as session:
                return await service.ledger_page(
                    session, account_id, pricing=pricing_source(settings).current(), limit=limit
                )
        except ApiError as exc:
            raise fail(exc.message) from None

    page = asyncio.run(with_db(settings, work))
    _print_account(page.account, as_json=False)
    table = Table("entry", "kind", "credits", "task", "note")
    for entry in page.data:
        table.add_row(str(entry.id), entry.kind, f"{entry.credits:g}", entry.task_id or "", entry.note or "")
    console.print(table)


@credits_app.command("audit")
def credits_audit(as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False) -> None:
    """Prove balance = sum of entries and that no task was reserved and ended without settlement. Exit 1 on
    any problem."""
    from reelgate.tasks.audit import audit

    settings = Settings()

    async def work(db: Database) -> AuditReport:
        async with db.read() as session:
            return await audit(session)

    report = asyncio.run(with_db(settings, work))
    if as_json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "accounts": report.accounts,
                    "entries": report.entries,
                    "tasks_checked": report.tasks_checked,
                    "problems": report.problems,
                }
            )
        )
    else:
        for problem in report.problems:
            err.print(f"[red]problem:[/red] {problem}")
        console.print(
            f"audit: {report.accounts} account(s), {report.entries} entries, {report.tasks_checked} reserved "
            f"task(s): {len(report.problems)} problem(s)"
        )
    if not report.ok:
        raise typer.Exit(code=1)
