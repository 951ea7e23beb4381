"""Shared fixtures: real databases (SQLite always, PostgreSQL where reachable), Redis, settings, apps, keys.

PostgreSQL tests get a schema of their own, so parallel runs and leftovers never collide. Where PostgreSQL or
Redis is absent they skip with the reason; with REELGATE_REQUIRE_SERVICES=1 (set by .ci/run) that skip is a
failure.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from reelgate.accounts import service as accounts
from reelgate.accounts.credits import to_millicredits
from reelgate.accounts.repository import KeyLimits
from reelgate.app import create_app
from reelgate.config import Settings
from reelgate.db import migrate
from reelgate.db.database import Database
from reelgate.resources import database_for
from tests.e2e.processes import Processes

POSTGRES_URL = os.environ.get("REELGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("REELGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# The motion short side of tests that must catch a job mid-run (kill, freeze, revoke, cancel it, or see several
# progress beats, one a second): a 10 s job at this size runs for several seconds even on a quiet machine,
# where a 480p one took about a second and a 720p one two.
LONG_RUN_SHORT_SIDE_PX = 1080
REQUIRE_SERVICES = os.environ.get("REELGATE_REQUIRE_SERVICES") == "1"


def _postgres_reachable() -> str | None:
    """None if reachable, else why not."""
    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg", "postgresql"), timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}"
    return None


_PG_PROBLEM: list[str | None] = []


def require_postgres() -> None:
    if not _PG_PROBLEM:
        _PG_PROBLEM.append(_postgres_reachable())
    problem = _PG_PROBLEM[0]
    if problem is not None:
        if REQUIRE_SERVICES:
            pytest.fail(f"{problem} (REELGATE_REQUIRE_SERVICES=1: CI must not skip this)")
        pytest.skip(problem)


async def _exec_pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@dataclass(frozen=True)
class Backend:
    name: str
    database_url: str
    schema: str


@contextmanager
def postgres_schema() -> Iterator[Backend]:
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_exec_pg(f'CREATE SCHEMA "{schema}"'))
    try:
        yield Backend("postgres", POSTGRES_URL, schema)
    finally:
        asyncio.run(_exec_pg(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh, migrated-nothing database on each backend."""
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'reelgate.db'}", "")
        return
    with postgres_schema() as postgres:
        yield postgres


@pytest.fixture
def postgres_backend() -> Iterator[Backend]:
    """PostgreSQL only (what several processes share); skipped, or failed under CI, where it is absent."""
    with postgres_schema() as postgres:
        yield postgres


def _redis_reachable() -> str | None:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        client.ping()
        client.close()
    except Exception as exc:
        return f"Redis not reachable at {REDIS_URL}: {exc}"
    return None


_REDIS_PROBLEM: list[str | None] = []


def require_redis() -> None:
    if not _REDIS_PROBLEM:
        _REDIS_PROBLEM.append(_redis_reachable())
    problem = _REDIS_PROBLEM[0]
    if problem is not None:
        if REQUIRE_SERVICES:
            pytest.fail(f"{problem} (REELGATE_REQUIRE_SERVICES=1: CI must not skip this)")
        pytest.skip(problem)


def sqlite_backend_at(directory: Path) -> Backend:
    return Backend("sqlite", f"sqlite+aiosqlite:///{directory / 'reelgate.db'}", "")


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> Backend:
    return sqlite_backend_at(tmp_path)


def make_settings(home: Path, backend: Backend, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "home": home,
        "database_url": backend.database_url,
        "database_schema": backend.schema,
        "allow_private_networks": True,
        "motion_short_side_px": 144,
        "public_url": "http://testserver",
        "log_json": False,
        # Long enough that a worker advertised at the start of a test stays live for all of it.
        "worker_ttl_s": 600.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as environment variables, for subprocesses (`reelgate serve`, `reelgate worker`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")}
    env.update(
        {
            "REELGATE_HOME": str(settings.home),
            "REELGATE_DATABASE_URL": settings.database_url,
            "REELGATE_DATABASE_SCHEMA": settings.database_schema,
            "REELGATE_ALLOW_PRIVATE_NETWORKS": str(settings.allow_private_networks).lower(),
            "REELGATE_MOTION_SHORT_SIDE_PX": str(settings.motion_short_side_px),
            "REELGATE_LEASE_S": str(settings.lease_s),
            "REELGATE_POLL_INTERVAL_S": str(settings.poll_interval_s),
            "REELGATE_PUBLIC_URL": settings.public_url,
            "REELGATE_WORKER_TTL_S": str(settings.worker_ttl_s),
            "REELGATE_LOG_JSON": "true",
        }
    )
    return env


def advertise_worker(settings: Settings, engines: tuple[str, ...] = ("motion",), *, worker_id: str = "") -> str:
    """A live worker in the registry that claims nothing: it stands for a worker busy on another machine, so
    an API-only app accepts creates for these engines and their tasks stay pending. Returns its id."""
    from reelgate.engines.base import Availability
    from reelgate.queue import registry

    worker_id = worker_id or f"elsewhere:{uuid.uuid4().hex[:8]}"
    advert = registry.Advert(
        id=worker_id,
        kind="database",
        engines={name: Availability(True) for name in engines},
        concurrency=1,
        running=0,
    )

    async def run() -> None:
        db = database_for(settings)
        try:
            async with db.transaction() as session:
                await registry.register(session, advert, now=time.time())
        finally:
            await db.dispose()

    asyncio.run(run())
    return worker_id


def wait_for_live_worker(settings: Settings, engine: str = "motion", timeout_s: float = 60.0) -> None:
    """Until a worker process advertises `engine` as available in the registry (it registers as it starts)."""
    from reelgate.queue import registry

    async def live() -> bool:
        db = database_for(settings)
        try:
            async with db.read() as session:
                counts = await registry.live_engines(session, now=time.time(), ttl_s=settings.worker_ttl_s)
            return counts.get(engine, 0) > 0
        finally:
            await db.dispose()

    deadline = time.monotonic() + timeout_s
    while not asyncio.run(live()):
        if time.monotonic() > deadline:
            raise AssertionError(f"no live worker advertised {engine!r} within {timeout_s:g} s")
        time.sleep(0.1)


def migrate_db(settings: Settings) -> None:
    async def run() -> None:
        db = database_for(settings)
        try:
            await migrate.upgrade(db)
        finally:
            await db.dispose()

    asyncio.run(run())


def create_key(
    settings: Settings,
    *,
    credits: float = 1000,
    name: str = "test",
    account_id: str | None = None,
    user_group: str = "default",
    limits: KeyLimits | None = None,
) -> str:
    """A key (on a new account of its own unless `account_id` is given) holding `credits`; returns the key."""

    async def run() -> str:
        db: Database = database_for(settings)
        try:
            async with db.transaction() as session:
                new_key, _, _ = await accounts.create_key(
                    session,
                    name=name,
                    user_group=user_group,
                    account_id=account_id,
                    credits_millicredits=to_millicredits(credits),
                    limits=limits,
                )
                return new_key.plaintext
        finally:
            await db.dispose()

    return asyncio.run(run())


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """`reelgate` subprocesses of the test, killed (and thawed first, if stopped) at its end."""
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()


@pytest.fixture
def settings(tmp_path: Path, sqlite_backend: Backend) -> Settings:
    s = make_settings(tmp_path / "home", sqlite_backend)
    migrate_db(s)
    advertise_worker(s)
    return s


@pytest.fixture
def api_key(settings: Settings) -> str:
    return create_key(settings)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The API alone (no workers), on SQLite."""
    with TestClient(create_app(settings, workers=0), raise_server_exceptions=False) as test_client:
        yield test_client


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# Debian's Chromium, driven by Playwright for the browser tests (never Playwright's own download).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The browser's path; without it a browser test skips with the reason (a failure in CI)."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is absent (apt-get install chromium)"
        if REQUIRE_SERVICES:
            pytest.fail(f"{reason} (REELGATE_REQUIRE_SERVICES=1: CI must not skip this)")
        pytest.skip(reason)
    return CHROMIUM
