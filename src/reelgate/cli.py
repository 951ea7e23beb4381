"""The `reelgate` command line: serve, worker, migrate, keys, engines, generate."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from reelgate.accounts import repository as accounts
from reelgate.accounts import service as account_service
from reelgate.accounts.credits import to_credits, to_millicredits
from reelgate.accounts.repository import KeyLimits
from reelgate.cli_accounts import accounts_app, credits_app
from reelgate.cli_common import console, err, fail, with_db
from reelgate.config import DEFAULT_MODEL, Settings
from reelgate.db.database import Database
from reelgate.db.models import Account, ApiKey
from reelgate.engines.base import RGBImage
from reelgate.errors import ApiError
from reelgate.logs import configure_logging

app = typer.Typer(
    help="reelgate: a self-hosted Kling-O1 image-to-video API.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
engines_app = typer.Typer(help="Engines this machine can run.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(engines_app, name="engines")

app.add_typer(accounts_app, name="accounts")
app.add_typer(credits_app, name="credits")

_fail = fail
_with_db = with_db


def _settings() -> Settings:
    return Settings()


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    from reelgate.db import migrate as migrations
    from reelgate.resources import database_for

    settings = _settings()

    async def run() -> str | None:
        db = database_for(settings)
        try:
            await migrations.upgrade(db)
            return await migrations.current_revision(db)
        finally:
            await db.dispose()

    revision = asyncio.run(run())
    console.print(f"database at revision [bold]{revision}[/bold] ({_safe_url(settings)})")


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[
        int | None, typer.Option(help="In-process jobs at once (default: one per core; 0 = API only)")
    ] = None,
) -> None:
    """Serve the API, with in-process workers unless --workers 0."""
    import uvicorn

    from reelgate.app import create_app
    from reelgate.resources import pricing_source

    settings = _settings()
    if not settings.public_url:
        settings.public_url = f"http://{host}:{port}"
    configure_logging(settings.log_level, json_lines=settings.log_json)
    concurrency = workers if workers is not None else (os.cpu_count() or 1)
    if concurrency < 0:
        raise _fail("--workers must be 0 or more")
    try:
        pricing_source(settings)
        asgi_app = create_app(settings, workers=concurrency)
    except ValueError as exc:  # a weak admin token, an unreadable or invalid pricing file
        raise _fail(str(exc)) from None
    err.print(
        f"reelgate serving on http://{host}:{port} (docs: /docs) with "
        + (f"{concurrency} in-process job slot(s)" if concurrency else "no workers (API only)")
        + f"; data in {settings.home.resolve()}"
    )
    uvicorn.run(
        asgi_app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


@app.command()
def worker(
    engines: Annotated[str, typer.Option(help="Comma-separated engines to run")] = "motion",
    concurrency: Annotated[int | None, typer.Option(help="Jobs at once (default: one per core)")] = None,
) -> None:
    """A standalone worker: claims tasks of its engines from the shared database."""
    from reelgate.engines.registry import build_engines
    from reelgate.queue.worker import Worker
    from reelgate.resources import Resources
    from reelgate.webhooks.delivery import Deliverer

    settings = _settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    names = [name.strip() for name in engines.split(",") if name.strip()]
    try:
        built = build_engines(settings, names)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    unavailable = {name: engine.availability().reason for name, engine in built.items() if not engine.availability().ok}
    for name, reason in unavailable.items():
        err.print(f"[yellow]engine {name} is unavailable and will not claim tasks:[/yellow] {reason}")
    runnable = {name: engine for name, engine in built.items() if name not in unavailable}
    if not runnable:
        raise _fail("no engine of this worker can run")
    jobs = concurrency if concurrency is not None else (os.cpu_count() or 1)
    if jobs < 1:
        raise _fail("--concurrency must be at least 1")

    async def run() -> None:
        from reelgate.db import migrate as migrations

        resources = Resources.build(settings)
        try:
            if not await migrations.is_current(resources.db):
                raise _fail("the database schema is not current: run 'reelgate migrate' first")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            # The worker ends tasks, so it delivers their callbacks too (as does any other process that runs one).
            await asyncio.gather(
                Worker(resources, runnable, concurrency=jobs).run(stop), Deliverer(resources).run(stop)
            )
        finally:
            await resources.close()

    asyncio.run(run())


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A name to recognise the key by")],
    account: Annotated[str | None, typer.Option(help="Account of the key (default: a new account for it)")] = None,
    credits: Annotated[float, typer.Option(help="Credits granted to the key's account", min=0)] = 0,
    group: Annotated[str | None, typer.Option(help="User group of a new account")] = None,
    models: Annotated[str | None, typer.Option(help="Comma-separated models the key may use (default: all)")] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute (default: the group's)", min=1)] = None,
    max_concurrent: Annotated[
        int | None, typer.Option(help="Unfinished tasks at once (default: the group's)", min=1)
    ] = None,
    expires: Annotated[
        str | None, typer.Option(help="When the key stops working: ISO date/time (UTC if no zone) or e.g. 30d, 12h")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Create an API key; it is shown once and stored only as a hash."""
    settings = _settings()
    allowed = [model.strip() for model in models.split(",") if model.strip()] if models is not None else None
    if allowed is not None:
        unknown = [model for model in allowed if model not in settings.models]
        if unknown or not allowed:
            known = ", ".join(settings.models)
            raise _fail(f"--models: unknown model(s) {', '.join(unknown) or '(none given)'}; known: {known}")
    try:
        expires_at = parse_expiry(expires, now=time.time()) if expires is not None else None
    except ValueError as exc:
        raise _fail(f"--expires: {exc}") from None
    limits = KeyLimits(allowed_models=allowed, rpm_limit=rpm, max_concurrent=max_concurrent, expires_at=expires_at)

    async def work(db: Database) -> tuple[str, str, str]:
        try:
            async with db.transaction() as session:
                new_key, _, owner = await account_service.create_key(
                    session,
                    name=name,
                    user_group=group or settings.default_user_group,
                    account_id=account,
                    credits_millicredits=to_millicredits(credits),
                    limits=limits,
                )
        except ApiError as exc:
            raise _fail(exc.message) from None
        return new_key.plaintext, new_key.webhook_secret, owner.id

    plaintext, webhook_secret, account_id = asyncio.run(_with_db(settings, work))
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
    settings = _settings()

    async def work(db: Database) -> list[tuple[ApiKey, Account | None]]:
        async with db.read() as session:
            keys = await accounts.list_keys(session)
            return [(key, await accounts.get_account(session, key.account_id or "")) for key in keys]

    rows = asyncio.run(_with_db(settings, work))
    table = Table("id", "name", "account", "available credits", "group", "models", "status")
    for key, owner in rows:
        view = account_service.key_view(key)
        table.add_row(
            key.id,
            key.name,
            key.account_id or "-",
            f"{to_credits(owner.balance_millicredits - owner.held_millicredits):g}" if owner else "-",
            owner.user_group if owner else "-",
            ", ".join(key.allowed_models) if key.allowed_models is not None else "all",
            view.status,
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (rg_<id>_...) or the whole key")]) -> None:
    """Revoke a key: every later request with it is a 401."""
    settings = _settings()
    key_id = _key_id(key_id)

    async def work(db: Database) -> bool:
        async with db.transaction() as session:
            return await accounts.revoke_key(session, key_id)

    if not asyncio.run(_with_db(settings, work)):
        raise _fail(f"no active key with id {key_id!r}")
    console.print(f"revoked key [bold]{key_id}[/bold]")


@keys_app.command("rotate-webhook-secret")
def keys_rotate_webhook_secret(
    key_id: Annotated[str, typer.Argument(help="The key id (rg_<id>_...) or the whole key")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Give a key a new callback signing secret; the old one keeps signing beside it for a while."""
    from reelgate.webhooks import repository as webhooks
    from reelgate.webhooks.signing import generate_secret

    settings = _settings()
    key_id = _key_id(key_id)
    secret = generate_secret()

    async def work(db: Database) -> bool:
        async with db.transaction() as session:
            key = await accounts.get_key(session, key_id)
            if key is None or key.revoked_at is not None:
                return False
            return await webhooks.rotate_secret(
                session, key_id, secret, now=time.time(), overlap_s=settings.webhook_secret_overlap_s
            )

    if not asyncio.run(_with_db(settings, work)):
        raise _fail(f"no active key with id {key_id!r}")
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
    settings = _settings()

    async def work(db: Database) -> str | None:
        async with db.transaction() as session:
            if await accounts.count_active_keys(session) > 0:
                return None
            new_key, _, _ = await account_service.create_key(
                session,
                name="development",
                user_group=settings.default_user_group,
                credits_millicredits=to_millicredits(credits),
            )
            return new_key.plaintext

    plaintext = asyncio.run(_with_db(settings, work))
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
        f"(image_urls also take http(s) URLs; more calls in README.md)"
    )


@engines_app.command("list")
def engines_list() -> None:
    """Engines this machine can run, and the models routed to them."""
    from reelgate.engines.registry import FACTORIES

    settings = _settings()
    table = Table("engine", "available", "detail", "models")
    for name, factory in FACTORIES.items():
        engine = factory(settings)
        availability = engine.availability()
        models = ", ".join(model for model, route in settings.models.items() if name in route)
        table.add_row(name, "yes" if availability.ok else "no", availability.reason, models)
    console.print(table)


@app.command()
def generate(
    image: Annotated[list[str], typer.Option(help="First frame, then optionally last frame (path or URL)")],
    prompt: Annotated[str, typer.Option(help="What happens; camera words drive the motion engine")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the MP4")] = Path("out.mp4"),
    aspect_ratio: Annotated[str | None, typer.Option(help="16:9, 9:16 or 1:1 (default: nearest to the image)")] = None,
    duration: Annotated[int, typer.Option(help="5 or 10 seconds")] = 5,
    seed: Annotated[int, typer.Option(help="Seed for engines that use randomness")] = 0,
    engine_name: Annotated[str, typer.Option("--engine", help="Engine to run")] = "motion",
) -> None:
    """Run an engine locally (no server) and write the video."""
    from reelgate.engines.base import Job, JobCancelled
    from reelgate.engines.registry import build_engines
    from reelgate.media.framing import ASPECT_RATIOS, nearest_aspect_ratio

    settings = _settings()
    if not 1 <= len(image) <= 2:
        raise _fail("give one --image (first frame) or two (first and last frame)")
    if duration not in (5, 10):
        raise _fail("--duration must be 5 or 10")
    if aspect_ratio is not None and aspect_ratio not in ASPECT_RATIOS:
        raise _fail(f"--aspect-ratio must be one of {', '.join(ASPECT_RATIOS)}")
    if not prompt.strip() or len(prompt) > 5000:
        raise _fail("--prompt must be 1 to 5000 characters")
    try:
        engine = build_engines(settings, [engine_name])[engine_name]
    except ValueError as exc:
        raise _fail(str(exc)) from None
    pixels = [_load_image(settings, ref, index) for index, ref in enumerate(image)]
    ratio = aspect_ratio or nearest_aspect_ratio(pixels[0].shape[1], pixels[0].shape[0])
    job = Job(task_id="local", images=pixels, prompt=prompt, aspect_ratio=ratio, duration_s=duration, seed=seed)

    with (
        tempfile.TemporaryDirectory() as scratch,
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
        ) as progress,
    ):
        bar = progress.add_task(f"{engine_name} {ratio} {duration}s", total=1.0)
        ctx = _CliContext(Path(scratch), progress, bar)
        try:
            result = engine.run(job, ctx, output)
        except JobCancelled:
            raise _fail("cancelled") from None
    console.print(
        f"wrote [bold]{output}[/bold]: {result.width}x{result.height}, {result.frames} frames at "
        f"{result.fps} fps ({', '.join(f'{k}={v}' for k, v in result.info.items())})"
    )


class _CliContext:
    def __init__(self, scratch_dir: Path, progress: Progress, bar: TaskID) -> None:
        self.scratch_dir = scratch_dir
        self._progress = progress
        self._bar = bar
        self._stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: self._stop.set())

    def report_progress(self, fraction: float) -> None:
        self._progress.update(self._bar, completed=fraction)

    def cancelled(self) -> bool:
        return self._stop.is_set()


def _load_image(settings: Settings, ref: str, index: int) -> RGBImage:
    from reelgate.media.images import ImageRejected, decode_image

    param = f"--image #{index + 1}"
    try:
        if ref.startswith(("http://", "https://", "data:")):
            return asyncio.run(_load_remote(settings, ref, param))
        path = Path(ref)
        if not path.is_file():
            raise _fail(f"{param}: no such file: {ref}")
        if path.stat().st_size > settings.max_image_bytes:
            raise _fail(f"{param}: larger than {settings.max_image_mb:g} MB")
        return decode_image(path.read_bytes(), max_pixels=settings.max_image_pixels, param=param).pixels
    except ImageRejected as rejected:
        raise _fail(f"{rejected.param}: {rejected.message}") from None


async def _load_remote(settings: Settings, ref: str, param: str) -> RGBImage:
    from reelgate.egress.client import EgressClient
    from reelgate.media.images import load_image

    async with EgressClient(
        allow_private_networks=settings.allow_private_networks, ca_bundle=settings.egress_ca_bundle
    ) as client:
        decoded = await load_image(
            ref,
            param=param,
            client=client,
            max_bytes=settings.max_image_bytes,
            max_pixels=settings.max_image_pixels,
            timeout_s=settings.image_fetch_timeout_s,
        )
    return decoded.pixels


if __name__ == "__main__":  # `python -m reelgate.cli`, as the tests start processes
    app()
