"""The `reelgate` command line: serve, worker, migrate, keys, engines, generate."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
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
from reelgate.accounts.credits import to_credits, to_millicredits
from reelgate.accounts.keys import generate_key
from reelgate.config import DEFAULT_MODEL, Settings
from reelgate.db.database import Database
from reelgate.db.models import ApiKey
from reelgate.engines.base import RGBImage
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

console = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    return Settings()


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


T = TypeVar("T")


async def _with_db(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    from reelgate.db import migrate
    from reelgate.resources import database_for

    db = database_for(settings)
    try:
        if not await migrate.is_current(db):
            raise _fail("the database schema is not current: run 'reelgate migrate' first")
        return await work(db)
    finally:
        await db.dispose()


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

    settings = _settings()
    if not settings.public_url:
        settings.public_url = f"http://{host}:{port}"
    configure_logging(settings.log_level, json_lines=settings.log_json)
    concurrency = workers if workers is not None else (os.cpu_count() or 1)
    if concurrency < 0:
        raise _fail("--workers must be 0 or more")
    err.print(
        f"reelgate serving on http://{host}:{port} (docs: /docs) with "
        + (f"{concurrency} in-process job slot(s)" if concurrency else "no workers (API only)")
        + f"; data in {settings.home.resolve()}"
    )
    uvicorn.run(
        create_app(settings, workers=concurrency),
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
    credits: Annotated[float, typer.Option(help="Starting credit balance", min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Create an API key; it is shown once and stored only as a hash."""
    settings = _settings()
    new_key = generate_key()

    async def work(db: Database) -> None:
        async with db.transaction() as session:
            await accounts.insert_key(
                session,
                new_key,
                name=name,
                balance_millicredits=to_millicredits(credits),
                user_group=settings.default_user_group,
            )

    asyncio.run(_with_db(settings, work))
    if as_json:
        print(
            json.dumps(
                {
                    "id": new_key.key_id,
                    "name": name,
                    "key": new_key.plaintext,
                    "credits": credits,
                    "webhook_secret": new_key.webhook_secret,
                }
            )
        )
    else:
        console.print(f"created key [bold]{new_key.key_id}[/bold] ({name}) with {credits:g} credits")
        console.print("the key (shown once, keep it safe):")
        print(new_key.plaintext)
        console.print("its callback signing secret (shown once; verify webhook-signature with it):")
        print(new_key.webhook_secret)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (ids and balances; the keys themselves are never stored)."""
    settings = _settings()

    async def work(db: Database) -> list[ApiKey]:
        async with db.read() as session:
            return list(await accounts.list_keys(session))

    rows = asyncio.run(_with_db(settings, work))
    table = Table("id", "name", "credits", "group", "status")
    for row in rows:
        table.add_row(
            row.id,
            row.name,
            f"{to_credits(row.balance_millicredits):g}",
            row.user_group,
            "revoked" if row.revoked_at else "active",
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
            new_key = generate_key()
            await accounts.insert_key(
                session,
                new_key,
                name="development",
                user_group=settings.default_user_group,
                balance_millicredits=to_millicredits(credits),
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
