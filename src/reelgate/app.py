"""`create_app(settings)`: the ASGI app. Resources are built in the lifespan, never at import time."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from reelgate import __version__
from reelgate.accounts.admin_token import weakness
from reelgate.api import account, admin, callbacks, files, files_api, ops, tasks
from reelgate.api import workers as worker_routes
from reelgate.api.auth import BEARER_DESCRIPTION, BEARER_SCHEME, KEY_DEPENDENCIES
from reelgate.api.console import install_console
from reelgate.api.docs import install_docs
from reelgate.api.errors import BodySizeLimit, install_error_handlers
from reelgate.api.middleware import RequestMetrics
from reelgate.config import Settings
from reelgate.db import migrate
from reelgate.logs import configure_logging
from reelgate.metrics import Metrics
from reelgate.resources import Resources
from reelgate.storage.base import StorageUnavailable
from reelgate.tasks.sweep import sweep_forever

log = logging.getLogger(__name__)

DESCRIPTION = """Kling-O1 image-to-video API (self-hosted). Create a task, then poll `GET /v1/tasks/{id}` every
3-5 seconds until `completed` or `failed`. Result links are signed and valid for 24 hours.
Every non-2xx answer has the envelope `{"error": {"code", "message", "type", "param"?, "fallback_suggestion"?}}`."""


def create_app(
    settings: Settings, *, workers: int = 0, resources: Resources | None = None, supervisor_pid: int | None = None
) -> FastAPI:
    """`workers` > 0 runs that many concurrent jobs in this process (embedded mode). `supervisor_pid`: the
    process that started this one (`serve --api-processes`), whose end this one follows. Refuses (ValueError)
    a weak admin token: it guards every account's money."""
    if settings.admin_token and (problem := weakness(settings.admin_token)) is not None:
        raise ValueError(f"REELGATE_ADMIN_TOKEN is too weak: {problem}")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        res = resources or Resources.build(settings, metrics=metrics)
        app.state.resources = res
        if not await migrate.is_current(res.db):
            await res.close()
            raise RuntimeError("the database schema is not current: run 'reelgate migrate' first")
        try:  # a missing bucket or refused credentials is an error of the start, not of the first task
            await asyncio.to_thread(res.storage.check)
        except StorageUnavailable as exc:
            await res.close()
            raise RuntimeError(f"the storage cannot be used: {exc.reason}") from None
        stop = asyncio.Event()
        background: list[asyncio.Task[None]] = await res.start(stop)
        background += [
            asyncio.create_task(sweep_forever(res, stop)),
            # In every mode, API-only included: a cancel ends a task here, and its callback leaves from here.
            asyncio.create_task(res.deliverer().run(stop)),
        ]
        if workers > 0:
            # Like `reelgate worker`: an engine this machine cannot run (no weights, no GPU) never claims tasks.
            # Registered before the first request, so routing knows what this process serves.
            worker = res.worker(concurrency=workers)
            await worker.register()
            res.live_engines.forget()
            background.append(asyncio.create_task(worker.run(stop)))
        if supervisor_pid is not None:
            background.append(asyncio.create_task(_follow_supervisor(supervisor_pid, stop)))
        reload_on_sighup = _install_sighup(res)
        try:
            yield
        finally:
            if reload_on_sighup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            stop.set()
            await asyncio.gather(*background, return_exceptions=True)
            await res.close()

    metrics = resources.metrics if resources is not None else Metrics()
    app = FastAPI(
        title="reelgate",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by install_docs from packaged assets: FastAPI's own pages need a CDN.
        docs_url=None,
        redoc_url=None,
        # reelgate reports through /metrics (Prometheus) and its logs; FastAPI's OpenTelemetry support, unused,
        # asked three global providers whether it was configured on every request (3% of a poll's CPU).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    routers = [tasks.router, callbacks.router, files.router, files_api.router, ops.router, account.router]
    routers += [worker_routes.router] + ([admin.router] if settings.admin_token else [])
    for router in routers:
        _add_routes(app, router)
    install_docs(app)
    install_console(app, settings)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        larger=[(worker_routes.UPLOAD_PATHS, settings.max_video_bytes)],
    )
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _add_routes(app: FastAPI, router: APIRouter) -> None:
    """The router's routes on the app's own router, not `include_router`: an included router is matched
    through a context of its own, rebuilt after a walk of its routes' versions on every request (about a
    tenth of a poll's CPU in this FastAPI, docs/benchmarks.md). Our routers carry their prefix and tags on
    each route already, and none has dependencies or settings of its own that an inclusion would add (the
    OpenAPI document is the same either way)."""
    app.router.routes.extend(router.routes)


# `reelgate serve --api-processes N` hands its resolved settings to its processes here, as JSON (uvicorn starts
# each process afresh and imports the app by name).
SERVE_SETTINGS_ENV = "REELGATE_SERVE_SETTINGS_JSON"
# ... and its own pid: a process that started after its supervisor died must know whom it outlived.
SERVE_SUPERVISOR_ENV = "REELGATE_SERVE_SUPERVISOR_PID"


def app_from_environment() -> FastAPI:
    """The app of one of `reelgate serve --api-processes N`'s processes: the API alone (in-process workers would
    run N times over; the jobs run in `reelgate worker`), with the settings `serve` resolved."""
    settings = Settings.model_validate_json(os.environ[SERVE_SETTINGS_ENV])
    configure_logging(settings.log_level, json_lines=settings.log_json)
    app = create_app(settings, workers=0, supervisor_pid=int(os.environ[SERVE_SUPERVISOR_ENV]))
    freeze_startup_heap()
    return app


def freeze_startup_heap() -> None:
    """For a process about to serve one app and nothing else (`reelgate serve`), once the app is built and
    before the server starts: move everything alive (modules, routes, models, metrics: some 150,000 objects)
    out of the garbage collector's reach. A full collection walked them all, about 100 ms with every request
    waiting, and a poll's p99 was that pause (docs/benchmarks.md). Only objects made later are scanned now;
    those frozen are still freed by reference counting. Before the server starts, not in the lifespan: frozen
    there, with the database connections and the background tasks alive, the process spent a third of a load
    test waiting (measured, not explained). Not for a process that builds many apps (tests): what is frozen is
    never collected as a cycle."""
    gc.collect()
    gc.freeze()


# How often an API process of `serve --api-processes` checks that its supervisor is still there.
SUPERVISOR_CHECK_S = 1.0


async def _follow_supervisor(supervisor_pid: int, stop: asyncio.Event) -> None:
    """Stop this process (as SIGTERM does: finish the requests in flight) once its supervisor is gone. A
    supervisor killed with SIGKILL cannot stop its processes, and they would go on holding the port, so that
    a restarted `serve` could not bind it."""
    while not stop.is_set():
        if os.getppid() != supervisor_pid:
            log.warning("the serve supervisor (pid %d) is gone: stopping", supervisor_pid)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=SUPERVISOR_CHECK_S)


def _install_sighup(resources: Resources) -> bool:
    """SIGHUP reloads the pricing file (it is also reloaded when it changes). Only the main thread of a process
    can own signals; an app run elsewhere (a test client's thread) relies on the change check alone."""
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, resources.pricing.reload)
    except (ValueError, RuntimeError, NotImplementedError):
        return False
    return True


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, minus the framework's 422 answers we never send (validation is a 400)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses", {})
            if "HTTPValidationError" in str(responses.get("422", "")):
                responses.pop("422")
    for name in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(name, None)
    _name_key_security(app, schema)
    app.openapi_schema = schema
    return schema


def _name_key_security(app: FastAPI, schema: dict[str, Any]) -> None:
    """The API-key scheme on every operation whose route authenticates a key (api/auth.py reads the header
    itself, so FastAPI does not see a security dependency there; a route without dependencies names it in its
    `openapi_extra`)."""
    keyed = {
        (route.path_format, method.lower())
        for route in app.routes
        if isinstance(route, APIRoute) and any(d.call in KEY_DEPENDENCIES for d in route.dependant.dependencies)
        for method in route.methods or ()
    }
    named = False
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if (path, method) in keyed:
                operation["security"] = [{BEARER_SCHEME: []}]
            named = named or any(BEARER_SCHEME in entry for entry in operation.get("security", []))
    if named:
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes[BEARER_SCHEME] = {"type": "http", "scheme": "bearer", "description": BEARER_DESCRIPTION}
