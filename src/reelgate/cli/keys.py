"""`reelgate keys ...`: create, list, revoke API keys, rotate their callback secrets, and the development key."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from reelgate.cli.common import console, fail, with_db
from reelgate.cli.common import settings as current_settings
from reelgate.config import DEFAULT_MODEL

if TYPE_CHECKING:
    from reelgate.db.database import Database
    from reelgate.db.models import Account, ApiKey

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A name to recognise the key by")],
    account: Annotated[str | None, typer.Option(help="Account of the key (default: a new account for it)")] = None,
    credits: Annotated[float, typer.Option(help="Credits granted to the key's account", min=0)] = 0,
    group: Annotated[str | None, typer.Option(help="User group of a new account")] = None,
    models: Annotated[str | None, typer.Option(help="Comma-separated models the key may use (default: all)")] = None,
    rpm: Annotated[
        int | None, typer.Option(help="Writes (creates, cancels, uploads) per minute (default: the group's)", min=1)
    ] = None,
    read_rpm: Annotated[
        int | None, typer.Option(help="Reads (every GET) per minute (default: the group's)", min=1)
    ] = None,
    max_concurrent: Annotated[
        int | None, typer.Option(help="Unfinished tasks at once (default: the group's)", min=1)
    ] = None,
    expires: Annotated[
        str | None, typer.Option(help="When the key stops working: ISO date/time (UTC if no zone) or e.g. 30d, 12h")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Create an API key; it is shown once and stored only as a hash."""
    settings = current_settings()
    allowed = [model.strip() for model in models.split(",") if model.strip()] if models is not None else None
    if allowed is not None:
        unknown = [model for model in allowed if model not in settings.models]
        if unknown or not allowed:
            known = ", ".join(settings.models)
            raise fail(f"--models: unknown model(s) {', '.join(unknown) or '(none given)'}; known: {known}")
    try:
        expires_at = parse_expiry(expires, now=time.time()) if expires is not None else None
    except ValueError as exc:
        raise fail(f"--expires: {exc}") from None
    from reelgate.accounts import service as accounts
    from reelgate.accounts.credits import to_millicredits
    from reelgate.accounts.repository import KeyLimits
    from reelgate.errors import ApiError

    limits = KeyLimits(
        allowed_models=allowed,
        rpm_limit=rpm,
        read_rpm_limit=read_rpm,
        max_concurrent=max_concurrent,
        expires_at=expires_at,
    )

    async def work(db: Database) -> tuple[str, str, str]:
        try:
            async with db.transaction() as session:
                new_key, _, owner = await accounts.create_key(
                    session,
                    name=name,
                    user_group=group or settings.default_user_group,
                    account_id=account,
                    credits_millicredits=to_millicredits(credits),
                    limits=limits,
                )
        except ApiError as exc:
            raise fail(exc.message) from None
        return new_key.plaintext, new_key.webhook_secret, owner.id

    plaintext, webhook_secret, account_id = asyncio.run(with_db(settings, work))
    key_id = plaintext.split("_")[1]
    if as_json:
        print(
            json.dumps(
                {
                    "id": key_id,
                    "name": name,
                    "key": plaintext,
                    "account_id": account_id,
                    "credits": credits,
                    "webhook_secret": webhook_secret,
                    "allowed_models": allowed,
                    "rpm": rpm,
                    "read_rpm": read_rpm,
                    "max_concurrent": max_concurrent,
                    "expires_at": expires_at,
                }
            )
        )
    else:
        console.print(f"created key [bold]{key_id}[/bold] ({name}) on account {account_id}")
        console.print("the key (shown once, keep it safe):")
        print(plaintext)
        console.print("its callback signing secret (shown once; verify webhook-signature with it):")
        print(webhook_secret)


def parse_expiry(value: str, *, now: float) -> float:
    """`30d`, `12h`, `90m` from now, or an ISO date/time (UTC when it names no zone); never in the past."""
    units = {"d": 86400, "h": 3600, "m": 60}
    if value[-1:] in units and value[:-1].isdigit():
        return now + int(value[:-1]) * units[value[-1]]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is neither an ISO date/time nor a duration like 30d") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment.timestamp() <= now:
        raise ValueError(f"{value} is in the past")
    return moment.timestamp()


@keys_app.command("list")
def keys_list() -> None:
    """List API keys with their accounts' credits (the keys themselves are never stored)."""
    from reelgate.accounts import service as accounts
    from reelgate.accounts.credits import to_credits

    settings = current_settings()

    async def work(db: Database) -> list[tuple[ApiKey, Account | None]]:
        async with db.read() as session:
            return await accounts.keys_with_accounts(session)

    rows = asyncio.run(with_db(settings, work))
    table = Table("id", "name", "account", "available credits", "group", "models", "status")
    for key, owner in rows:
        table.add_row(
            key.id,
            key.name,
            key.account_id or "-",
            f"{to_credits(owner.balance_millicredits - owner.held_millicredits):g}" if owner else "-",
            owner.user_group if owner else "-",
            ", ".join(key.allowed_models) if key.allowed_models is not None else "all",
            accounts.key_view(key).status,
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (rg_<id>_...) or the whole key")]) -> None:
    """Revoke a key: every later request with it is a 401."""
    from reelgate.accounts import service as accounts
    from reelgate.errors import ApiError

    settings = current_settings()
    key_id = _key_id(key_id)

    async def work(db: Database) -> None:
        try:
            async with db.transaction() as session:
                await accounts.revoke_key(session, key_id)
        except ApiError as exc:
            raise fail(exc.message) from None

    asyncio.run(with_db(settings, work))
    console.print(f"revoked key [bold]{key_id}[/bold]")


@keys_app.command("rotate-webhook-secret")
def keys_rotate_webhook_secret(
    key_id: Annotated[str, typer.Argument(help="The key id (rg_<id>_...) or the whole key")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Give a key a new callback signing secret; the old one keeps signing beside it for a while."""
    from reelgate.accounts import service as accounts
    from reelgate.errors import ApiError

    settings = current_settings()
    key_id = _key_id(key_id)

    async def work(db: Database) -> str:
        try:
            async with db.transaction() as session:
                return await accounts.rotate_webhook_secret(
                    session, key_id, overlap_s=settings.webhook_secret_overlap_s
                )
        except ApiError as exc:
            raise fail(exc.message) from None

    secret = asyncio.run(with_db(settings, work))
    overlap = f"{settings.webhook_secret_overlap_s:g} s"
    if as_json:
        print(json.dumps({"id": key_id, "webhook_secret": secret, "previous_secret_signs_for_s": overlap}))
        return
    console.print(
        f"new callback signing secret of [bold]{key_id}[/bold] (shown once); for the next {overlap} every "
        "callback is signed with both the old and the new secret"
    )
    print(secret)


def _key_id(key_or_id: str) -> str:
    parts = key_or_id.split("_")
    return parts[1] if len(parts) == 3 and parts[0] == "rg" else key_or_id


@keys_app.command("bootstrap")
def keys_bootstrap(
    credits: Annotated[float, typer.Option(help="Credits of the development key")] = 1000,
    base_url: Annotated[str, typer.Option(help="Where the API will listen")] = "http://127.0.0.1:8000",
) -> None:
    """Create a development key if there is no active key yet, and show how to call the API with it."""
    from reelgate.accounts import service as accounts
    from reelgate.accounts.credits import to_millicredits

    settings = current_settings()

    async def work(db: Database) -> str | None:
        async with db.transaction() as session:
            new_key = await accounts.bootstrap_key(
                session, credits_millicredits=to_millicredits(credits), user_group=settings.default_user_group
            )
        return new_key.plaintext if new_key is not None else None

    plaintext = asyncio.run(with_db(settings, work))
    if plaintext is None:
        console.print(
            "an API key already exists (see 'reelgate keys list'; make another with "
            "'reelgate keys create --name NAME --credits 100')"
        )
        return
    console.print(f"\n[bold green]development API key[/bold green] ({credits:g} credits), shown once:\n")
    print(plaintext)
    console.print("\ntry it, once the server below is up:\n")
    print(_curl_example(base_url, plaintext))


def _curl_example(base_url: str, key: str) -> str:
    # printf is a shell builtin, so the base64 text never meets the command-line length limit.
    body = json.dumps(
        {"model": DEFAULT_MODEL, "prompt": "slow push in", "image_urls": ["data:image/jpeg;base64,%s"] * 2}
    )
    return (
        f"export KEY={key}\n"
        f'printf \'{body}\' "$(base64 -w0 examples/first-frame.jpg)" "$(base64 -w0 examples/last-frame.jpg)" |\n'
        f'  curl -s {base_url}/v1/videos/generations -H "Authorization: Bearer $KEY" \\\n'
        f"    -H 'Content-Type: application/json' --data-binary @-\n"
        f'curl -s {base_url}/v1/tasks/TASK_ID -H "Authorization: Bearer $KEY"   # poll every 3-5 s\n'
        f"(image_urls also take http(s) URLs; more calls in docs/api.md)"
    )
