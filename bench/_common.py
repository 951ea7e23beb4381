"""Helpers shared by the benchmarks: percentiles, a throwaway home with a migrated database (SQLite, or a
throwaway PostgreSQL schema) and a key, and running a server process until it is ready."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from reelgate.accounts import service as accounts
from reelgate.accounts.repository import KeyLimits
from reelgate.config import Settings
from reelgate.db import migrate
from reelgate.engines.base import Availability
from reelgate.queue import registry
from reelgate.resources import database_for

# The tests' PostgreSQL (tests/conftest.py): a database `test` on loopback, user postgres, no password.
POSTGRES_URL = os.environ.get("REELGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(values_s: list[float]) -> str:
    ms = [v * 1000 for v in values_s]
    return (
        f"p50 {percentile(ms, 50):7.2f} ms  p90 {percentile(ms, 90):7.2f} ms  p99 {percentile(ms, 99):7.2f} ms"
        f"  mean {statistics.fmean(ms):7.2f} ms"
    )


def fresh_home(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"reelgate-bench-{prefix}-"))


def prepared_settings(home: Path, **overrides: object) -> tuple[Settings, str]:
    settings = Settings(home=home, **overrides)  # type: ignore[arg-type]

    async def run() -> str:
        db = database_for(settings)
        try:
            await migrate.upgrade(db)
            async with db.transaction() as session:
                # No rate limit: the bench measures the service, not its limiter.
                new_key, _, _ = await accounts.create_key(
                    session,
                    name="bench",
                    user_group="default",
                    credits_millicredits=10**15,
                    limits=KeyLimits(rpm_limit=10**6, read_rpm_limit=10**6),
                )
            return new_key.plaintext
        finally:
            await db.dispose()

    return settings, asyncio.run(run())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_process(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen([sys.executable, *args], env={**os.environ, **env}, stdout=handle, stderr=subprocess.STDOUT)


def wait_ready(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready")


def settings_env(settings: Settings) -> dict[str, str]:
    return {
        "REELGATE_HOME": str(settings.home),
        "REELGATE_LOG_JSON": "true",
        "REELGATE_LOG_LEVEL": "WARNING",
        "REELGATE_DATABASE_URL": settings.database_url,
        "REELGATE_DATABASE_SCHEMA": settings.database_schema,
        "REELGATE_MOTION_SHORT_SIDE_PX": str(settings.motion_short_side_px),
        "REELGATE_POLL_INTERVAL_S": str(settings.poll_interval_s),
        "REELGATE_WORKER_TTL_S": str(settings.worker_ttl_s),
    }


class PostgresSchema:
    """A throwaway schema of the tests' PostgreSQL for one bench run (dropped at the end), like the tests use;
    `enabled=False` (or PostgreSQL unreachable: `problem` says why) gives None."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.name = f"bench_{uuid.uuid4().hex[:12]}"
        self.problem: str | None = None
        self._created = False

    def _execute(self, sql: str) -> None:
        import asyncpg

        async def run() -> None:
            connection = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg", "postgresql"), timeout=3)
            try:
                await connection.execute(sql)
            finally:
                await connection.close()

        asyncio.run(run())

    def __enter__(self) -> PostgresSchema | None:
        if not self.enabled:
            return None
        try:
            self._execute(f'CREATE SCHEMA "{self.name}"')
        except Exception as exc:
            self.problem = f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}"
            return None
        self._created = True
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _traceback: TracebackType | None
    ) -> None:
        if self._created:
            self._execute(f'DROP SCHEMA "{self.name}" CASCADE')


@dataclass(frozen=True)
class Load:
    """A prepared deployment for a load run: its settings, an unlimited key, and a worker advertised as live
    (so an API-only server accepts creates: the tasks stay pending, as if a worker elsewhere were busy)."""

    settings: Settings
    key: str
    backend: str


# A worker's advertisement stays live this long: the whole bench run.
_LIVE_S = 3600.0


def prepare_load(home: Path, schema: PostgresSchema | None, **overrides: object) -> Load:
    values: dict[str, object] = {"worker_ttl_s": _LIVE_S, **overrides}
    if schema is not None:
        values.update(database_url=POSTGRES_URL, database_schema=schema.name)
    settings, key = prepared_settings(home, **values)

    async def advertise() -> None:
        db = database_for(settings)
        try:
            async with db.transaction() as session:
                advert = registry.Advert(
                    id=f"bench:{uuid.uuid4().hex[:8]}",
                    kind="database",
                    engines={"motion": Availability(True)},
                    concurrency=1,
                    running=0,
                )
                await registry.register(session, advert, now=time.time())
        finally:
            await db.dispose()

    asyncio.run(advertise())
    return Load(settings=settings, key=key, backend="PostgreSQL" if schema is not None else "SQLite")
