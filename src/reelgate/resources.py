"""The live handles built from Settings, and the one place that wires the packages together.

Built in the app's lifespan (or by a CLI command), never at import time, so tests build one per settings.
The lower packages name what they need as protocols (queue/context.py, webhooks/delivery.py,
tasks/context.py); `Resources` provides all of them, including the two hooks that let a lower layer reach a
higher one without importing it: the queue's "a task ended" (settle credits, enqueue the callback) and the
deliverer's "what does this callback send".
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.accounts.key_cache import KeyCache
from reelgate.accounts.limits import RateLimiter, build_limiter
from reelgate.accounts.pricing import PricingSource, builtin_table
from reelgate.config import Settings
from reelgate.db import migrate
from reelgate.db.database import Database
from reelgate.db.models import Task
from reelgate.egress.client import EgressClient
from reelgate.engines.registry import EngineRegistry, build_engines
from reelgate.engines.relay.base import RelayEngine
from reelgate.engines.relay.health import RelayRuntime
from reelgate.engines.relay.health_stores import DbHealthStore, RedisHealthStore
from reelgate.errors import ApiError
from reelgate.metrics import Metrics
from reelgate.queue import repository as queue_repo
from reelgate.queue.recovery import recover_forever
from reelgate.queue.registry import LiveEngines
from reelgate.queue.states import TaskStatus
from reelgate.queue.worker import Worker
from reelgate.storage.base import Storage, StorageUnavailable
from reelgate.storage.factory import build_storage
from reelgate.storage.links import LinkSigner
from reelgate.storage.scratch import ScratchDir
from reelgate.tasks import callbacks, settlement
from reelgate.tasks.events import TaskWatcher
from reelgate.webhooks.delivery import CallbackPayload, Deliverer

DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


def load_secret_key(settings: Settings) -> bytes:
    """The link-signing key: from settings, else generated once and kept beside the data it protects."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = settings.home / "secret_key"
    if not path.exists():
        settings.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def database_for(settings: Settings) -> Database:
    connect_args = {}
    if settings.database_schema and not settings.is_sqlite:
        connect_args = {"server_settings": {"search_path": settings.database_schema}}
    if settings.is_sqlite:
        settings.home.mkdir(parents=True, exist_ok=True)
    return Database(
        settings.resolved_database_url, connect_args=connect_args, sqlite_synchronous=settings.sqlite_synchronous
    )


def pricing_source(settings: Settings) -> PricingSource:
    return PricingSource(settings.pricing_file, builtin_table(settings.price_per_second_credits))


def _egress_client(settings: Settings) -> EgressClient:
    return EgressClient(allow_private_networks=settings.allow_private_networks, ca_bundle=settings.egress_ca_bundle)


@dataclass
class Resources:
    settings: Settings
    db: Database
    links: LinkSigner
    storage: Storage
    egress: EgressClient
    # Callbacks get an outbound client (and so a connection pool) of their own: slow receivers can never
    # hold the connections that image downloads of running tasks need.
    callback_egress: EgressClient
    registry: EngineRegistry
    metrics: Metrics
    # This process's own scratch directory (storage/scratch.py): what a killed process left is removed at start.
    scratch: ScratchDir
    pricing: PricingSource
    limiter: RateLimiter
    live_engines: LiveEngines
    relays: RelayRuntime = field(default_factory=RelayRuntime)
    # The process's one reader of the tasks that event streams follow (tasks/events.py).
    task_watcher: TaskWatcher = field(init=False)
    # The verified keys of this process (accounts/key_cache.py).
    key_cache: KeyCache = field(init=False)

    def __post_init__(self) -> None:
        self.task_watcher = TaskWatcher(self.db, self.settings)
        self.key_cache = KeyCache(self.db, max_age_s=self.settings.key_cache_s)

    @property
    def scratch_root(self) -> Path:
        return self.scratch.path

    @classmethod
    def build(
        cls, settings: Settings, *, metrics: Metrics | None = None, engine_names: Iterable[str] | None = None
    ) -> Resources:
        """`engine_names`: build only these engines (a worker that runs a few; default: every engine
        REELGATE_MODELS routes to); ValueError for an unknown one."""
        db = database_for(settings)
        # Route health is shared by every process of the deployment: in Redis where there is one, else in
        # the database they all use.
        relays = RelayRuntime(RedisHealthStore(settings.redis_url) if settings.redis_url else DbHealthStore(db))
        engines = build_engines(settings, engine_names, relays=relays)
        scratch = ScratchDir.create(settings.home / "tmp")
        links = LinkSigner(load_secret_key(settings), settings.public_url or DEFAULT_PUBLIC_URL)
        return cls(
            settings=settings,
            db=db,
            links=links,
            storage=build_storage(settings, links),
            egress=_egress_client(settings),
            callback_egress=_egress_client(settings),
            registry=EngineRegistry(engines, settings.models),
            metrics=metrics or Metrics(),
            scratch=scratch,
            pricing=pricing_source(settings),
            limiter=build_limiter(settings.redis_url),
            live_engines=LiveEngines(db, ttl_s=settings.worker_ttl_s),
            relays=relays,
        )

    # -- the hooks the lower layers call ----------------------------------------------------------------------

    async def task_ended(self, session: AsyncSession, task: Task, now: float) -> None:
        await settlement.task_ended(session, task, now)

    async def callback_payloads(self, session: AsyncSession, task_ids: list[str]) -> dict[str, CallbackPayload]:
        return await callbacks.callback_payloads(session, task_ids, storage=self.storage, settings=self.settings)

    async def serving_engines(self, *, fresh: bool = False) -> set[str]:
        """The engines some live worker (of any process) advertises as available, less the relay routes this
        process already knows are out (the shared health reaches it before the workers' next advertisement).
        From the registry as this process read it at most a second ago, or now with `fresh`."""
        live = set(await self.live_engines.counts(fresh=fresh))
        relays = self.relay_engines
        return {name for name in live if not ((relay := relays.get(name)) is not None and relay.shared_problem())}

    @functools.cached_property
    def relay_engines(self) -> dict[str, RelayEngine]:
        """The relay engines by name, found once: every create asks, and an isinstance check against a runtime
        protocol inspects the object's attributes each time."""
        return {name: engine for name, engine in self.registry.engines.items() if isinstance(engine, RelayEngine)}

    # -- lifecycle ------------------------------------------------------------------------------------------

    def has_relays(self) -> bool:
        return bool(self.relay_engines)

    async def start(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        """What every process on the database runs besides its own work: the recovery of expired leases, and
        the shared relay health (cleared of this process's own credential problems, then kept fresh). Returns
        the background tasks to await after `stop`."""
        started = [asyncio.create_task(recover_forever(self, stop))]
        if self.has_relays():
            await self.relays.start()
            started.append(asyncio.create_task(self.relays.run(stop)))
        return started

    # -- the background processes ----------------------------------------------------------------------------

    def unavailable_engines(self) -> dict[str, str]:
        return {
            name: engine.availability().reason
            for name, engine in self.registry.engines.items()
            if not engine.availability().ok
        }

    def worker(self, *, concurrency: int) -> Worker:
        """A worker of every engine this service built; it claims only for those available at the time."""
        return Worker(self, dict(self.registry.engines), concurrency=concurrency)

    def deliverer(self) -> Deliverer:
        return Deliverer(self)

    # -- operations ----------------------------------------------------------------------------------------

    async def readiness(self) -> dict[str, Any]:
        """`/readyz`: the database reachable and migrated, and each engine's availability; a relay whose
        credentials the upstream refused degrades readiness (the API itself still serves)."""
        try:
            current = await migrate.is_current(self.db)
        except Exception:
            raise ApiError(503, "Database unreachable", headers={"Retry-After": "5"}) from None
        if not current:
            raise ApiError(503, "Database schema is not current: run 'reelgate migrate'", headers={"Retry-After": "30"})
        await _storage_ready(self.storage)
        engines = {name: engine.availability().ok for name, engine in self.registry.engines.items()}
        live = await self.live_engines.counts()
        workers = {name: live.get(name, 0) for name in self.registry.engines}
        degraded = {
            name: reason
            for name, engine in self.registry.engines.items()
            if isinstance(engine, RelayEngine) and (reason := engine.degraded_reason())
        }
        if degraded:
            return {"status": "degraded", "engines": engines, "live_workers": workers, "degraded": degraded}
        return {"status": "ready", "engines": engines, "live_workers": workers}

    async def metrics_text(self) -> bytes:
        """`/metrics`: the queue's gauges read from the database, then every metric in Prometheus format."""
        async with self.db.read() as session:
            counts = await queue_repo.counts(session, now=time.time())
        for status in TaskStatus:
            self.metrics.tasks.labels(str(status)).set(counts.by_status.get(status, 0))
        self.metrics.queue_depth.set(counts.ready)
        live = await self.live_engines.counts()
        for name in self.registry.engines:
            self.metrics.live_workers.labels(name).set(live.get(name, 0))
        return bytes(generate_latest(self.metrics.registry))

    async def close(self) -> None:
        await self.task_watcher.aclose()
        await self.relays.flush()
        await self.relays.aclose()
        await self.limiter.aclose()
        await self.egress.aclose()
        await self.callback_egress.aclose()
        await self.db.dispose()
        self.scratch.close()


async def _storage_ready(storage: Storage) -> None:
    """`/readyz`: a bucket deleted or credentials revoked after the start shows here, not in failing tasks."""
    try:
        await asyncio.to_thread(storage.check)
    except StorageUnavailable as exc:
        raise ApiError(503, f"Storage unavailable: {exc.reason}", headers={"Retry-After": "30"}) from None


@dataclass
class WorkerHost:
    """What a remote worker runs on: its engines and the job runner's needs, and nothing else. It holds no
    database, no storage and no credentials but its worker token (queue/remote_worker.py)."""

    settings: Settings
    egress: EgressClient
    metrics: Metrics
    scratch: ScratchDir
    registry: EngineRegistry

    @property
    def scratch_root(self) -> Path:
        return self.scratch.path

    @classmethod
    def build(cls, settings: Settings, *, engine_names: Iterable[str] | None = None) -> WorkerHost:
        scratch = ScratchDir.create(settings.home / "tmp")
        # Relay health stays in this process: a remote worker reaches no shared store (docs/deployment.md).
        engines = build_engines(settings, engine_names, relays=RelayRuntime())
        return cls(
            settings=settings,
            egress=_egress_client(settings),
            metrics=Metrics(),
            scratch=scratch,
            registry=EngineRegistry(engines, settings.models),
        )

    def unavailable_engines(self) -> dict[str, str]:
        return {
            name: engine.availability().reason
            for name, engine in self.registry.engines.items()
            if not engine.availability().ok
        }

    async def close(self) -> None:
        await self.egress.aclose()
        self.scratch.close()
