"""`reelgate migrate`, `reelgate serve` and `reelgate worker`: the long-running processes."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Annotated

import typer

from reelgate.cli.common import console, err, fail, settings
from reelgate.config import Settings
from reelgate.logs import configure_logging

# Where a remote worker finds its token when --token is not given (a systemd EnvironmentFile, not argv).
WORKER_TOKEN_ENV = "REELGATE_WORKER_TOKEN"


def migrate() -> None:
    """Create or upgrade the database schema."""
    from reelgate.db import migrate as migrations
    from reelgate.resources import database_for

    current = settings()

    async def run() -> str | None:
        db = database_for(current)
        try:
            await migrations.upgrade(db)
            return await migrations.current_revision(db)
        finally:
            await db.dispose()

    revision = asyncio.run(run())
    console.print(f"database at revision [bold]{revision}[/bold] ({_safe_url(current)})")


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[
        int | None, typer.Option(help="In-process jobs at once (default: one per core; 0 = API only)")
    ] = None,
    migrate_first: Annotated[
        bool, typer.Option("--migrate", help="Create or upgrade the database schema before serving")
    ] = False,
    api_processes: Annotated[
        int,
        typer.Option(
            help="API processes sharing the port, to use every core (default 1). More than 1 serves the API only "
            "(--workers 0: run the jobs in `reelgate worker`) and needs REELGATE_REDIS_URL (one count per key)"
        ),
    ] = 1,
) -> None:
    """Serve the API, with in-process workers unless --workers 0. A fresh embedded home (SQLite, no schema yet)
    is migrated by itself; anything else needs `reelgate migrate` or --migrate."""
    import uvicorn

    from reelgate.app import SERVE_SETTINGS_ENV, SERVE_SUPERVISOR_ENV, create_app, freeze_startup_heap
    from reelgate.resources import pricing_source

    current = settings()
    if not current.public_url:
        current.public_url = f"http://{host}:{port}"
    configure_logging(current.log_level, json_lines=current.log_json)
    concurrency = workers if workers is not None else (os.cpu_count() or 1)
    if concurrency < 0:
        raise fail("--workers must be 0 or more")
    if api_processes < 1:
        raise fail("--api-processes must be at least 1")
    if api_processes > 1:
        # Each process would run its own in-process workers, N times the slots asked for: jobs belong to
        # `reelgate worker` processes beside the API ones (docs/deployment.md).
        if concurrency > 0:
            raise fail("--api-processes above 1 serves the API only: pass --workers 0 and run `reelgate worker`")
        # The in-process rate limiter counts per process: N of them would let each key through N times.
        if not current.redis_url:
            raise fail("--api-processes above 1 needs REELGATE_REDIS_URL, so every process counts one rate limit")
    problem = asyncio.run(_prepare_schema(current, migrate_first=migrate_first))
    if problem is not None:
        raise fail(problem)
    try:
        pricing_source(current)
        asgi_app = create_app(current, workers=concurrency)
    except ValueError as exc:  # a weak admin token, an unreadable or invalid pricing file
        raise fail(str(exc)) from None
    err.print(
        f"reelgate serving on http://{host}:{port} (console: /console, API docs: /docs) with "
        + (f"{concurrency} in-process job slot(s)" if concurrency else "no workers (API only)")
        + (f", {api_processes} API processes" if api_processes > 1 else "")
        + f"; data in {current.home.resolve()}"
    )
    if api_processes > 1:
        # uvicorn's supervisor binds the port once, starts the processes (each builds the app from the
        # settings resolved here) and restarts one that dies.
        os.environ[SERVE_SETTINGS_ENV] = current.model_dump_json()
        os.environ[SERVE_SUPERVISOR_ENV] = str(os.getpid())
        uvicorn.run(
            "reelgate.app:app_from_environment",
            factory=True,
            workers=api_processes,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
        )
        return
    freeze_startup_heap()
    uvicorn.run(
        asgi_app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


async def _prepare_schema(current: Settings, *, migrate_first: bool) -> str | None:
    """None once the schema is current. `pip install` + `reelgate serve` must just work, so a SQLite database
    with no schema at all (a fresh embedded home) is migrated here; a shared PostgreSQL, or a database at an
    older revision, is upgraded only when asked (other processes may still run the old code)."""
    from reelgate.db import migrate as migrations
    from reelgate.resources import database_for

    db = database_for(current)
    try:
        if await migrations.is_current(db):
            return None
        fresh_embedded = current.is_sqlite and await migrations.current_revision(db) is None
        if migrate_first or fresh_embedded:
            await migrations.upgrade(db)
            err.print(f"database migrated to revision {await migrations.current_revision(db)}")
            return None
        return "the database schema is not current: run 'reelgate migrate' first (or 'reelgate serve --migrate')"
    finally:
        await db.dispose()


def worker(
    engines: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated engines to run (default: every engine of REELGATE_MODELS this machine can run)"
        ),
    ] = None,
    concurrency: Annotated[int | None, typer.Option(help="Jobs at once (default: one per core)")] = None,
    server: Annotated[
        str | None,
        typer.Option(help="A remote worker: the API's URL (https://...); it needs no database or bucket access"),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="The remote worker's token (rgw_...; reelgate workers tokens create)", envvar=WORKER_TOKEN_ENV
        ),
    ] = None,
) -> None:
    """A standalone worker: claims tasks of its engines from the shared database, or, with --server and
    --token, from an API over HTTPS."""
    current = settings()
    configure_logging(current.log_level, json_lines=current.log_json)
    names = [name.strip() for name in engines.split(",") if name.strip()] if engines is not None else None
    if names == []:
        raise fail("--engines names no engine")
    jobs = concurrency if concurrency is not None else (os.cpu_count() or 1)
    if jobs < 1:
        raise fail("--concurrency must be at least 1")
    if server is not None or token is not None:
        if server is None or token is None:
            raise fail("a remote worker needs both --server and --token")
        _remote_worker(current, server, token, names, jobs)
        return
    from reelgate.resources import Resources

    async def run() -> None:
        from reelgate.db import migrate as migrations
        from reelgate.storage.base import StorageUnavailable

        try:
            resources = Resources.build(current, engine_names=names)
        except ValueError as exc:  # an unknown engine name
            raise fail(str(exc)) from None
        try:
            unavailable = resources.unavailable_engines()
            for name, reason in unavailable.items():
                err.print(f"[yellow]engine {name} is unavailable and will not claim tasks:[/yellow] {reason}")
            if len(unavailable) == len(resources.registry.engines):
                raise fail("no engine of this worker can run")
            if not await migrations.is_current(resources.db):
                raise fail("the database schema is not current: run 'reelgate migrate' first")
            try:  # the worker is where videos are written: a missing bucket fails here, not the first task
                await asyncio.to_thread(resources.storage.check)
            except StorageUnavailable as exc:
                raise fail(f"the storage cannot be used: {exc.reason}") from None
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            started = await resources.start(stop)
            # The worker ends tasks, so it delivers their callbacks too (as does any other process that runs one).
            await asyncio.gather(
                resources.worker(concurrency=jobs).run(stop), resources.deliverer().run(stop), *started
            )
        finally:
            await resources.close()

    asyncio.run(run())


def _remote_worker(current: Settings, server: str, token: str, names: list[str] | None, jobs: int) -> None:
    from reelgate.queue.remote_worker import RemoteWorker, TokenRefused, WorkerApi
    from reelgate.resources import WorkerHost

    problem = server_url_problem(server, allow_private=current.allow_private_networks)
    if problem:
        raise fail(f"--server: {problem}")

    async def run() -> None:
        try:
            host = WorkerHost.build(current, engine_names=names)
        except ValueError as exc:  # an unknown engine name
            raise fail(str(exc)) from None
        api = WorkerApi(server, token, verify=current.egress_ca_bundle or True)
        try:
            unavailable = host.unavailable_engines()
            for name, reason in unavailable.items():
                err.print(f"[yellow]engine {name} is unavailable and will not claim tasks:[/yellow] {reason}")
            if len(unavailable) == len(host.registry.engines):
                raise fail("no engine of this worker can run")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            worker = RemoteWorker(host, dict(host.registry.engines), concurrency=jobs, api=api)
            await worker.run(stop)
        except TokenRefused as exc:
            raise fail(f"the API refused this worker: {exc}") from None
        finally:
            await api.aclose()
            await host.close()

    asyncio.run(run())


def server_url_problem(url: str, *, allow_private: bool) -> str | None:
    """Why a remote worker must not use this API URL: https only, plain http only to this machine or where
    private networks are allowed (development)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"{url!r} is not an http(s) URL"
    if parts.scheme == "http" and not allow_private and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
        return "plain http is allowed only to this machine (127.0.0.1) or with REELGATE_ALLOW_PRIVATE_NETWORKS"
    return None
