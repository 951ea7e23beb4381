"""Helpers shared by the benchmarks: percentiles, a throwaway home with a migrated database (SQLite, or a
throwaway PostgreSQL schema) and a key, running a server process until it is ready, an S3 bucket on loopback
(moto's server), and a worker token for a remote worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
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


# How long the idle worker advert of prepared_settings counts as live: longer than any benchmark runs.
ADVERT_TTL_S = 24 * 3600.0


def prepared_settings(home: Path, *, idle_worker: bool = False, **overrides: object) -> tuple[Settings, str]:
    """A migrated database in `home` and an unlimited key on it. With `idle_worker`, the workers registry also
    holds a live motion worker that claims nothing: it stands for workers busy on other machines, so an API-only
    `serve --workers 0` accepts creates (it routes only to live workers) and the tasks stay pending, which is
    what a benchmark of the API alone wants."""
    if idle_worker:
        overrides.setdefault("worker_ttl_s", ADVERT_TTL_S)
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
                if idle_worker:
                    advert = registry.Advert(
                        id=f"bench-idle:{os.getpid()}",
                        kind="database",
                        engines={"motion": Availability(True)},
                        concurrency=1,
                        running=0,
                    )
                    await registry.register(session, advert, now=time.time())
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


def reelgate_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without its own REELGATE_ settings, plus `extra`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")}, **extra}


async def _pg_execute(url: str, sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"), timeout=3)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def pg_schema(url: str) -> str | None:
    """A fresh schema on PostgreSQL, or None if it cannot be reached (left in place: `PostgresSchema` drops its
    own at the end)."""
    import asyncpg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        await _pg_execute(url, f'CREATE SCHEMA "{schema}"')
    except (OSError, asyncpg.PostgresError):
        return None
    return schema


# What the processes of a benchmark on S3 sign with: moto accepts any key. The rest keeps boto3 away from
# this machine's own AWS setup.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "reelgate-bench",
    "AWS_SECRET_ACCESS_KEY": "reelgate-bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


@contextlib.contextmanager
def s3_bucket() -> Iterator[tuple[str, str]]:
    """moto's S3 server on a free loopback port and a fresh bucket on it: (endpoint URL, bucket). Give the
    processes S3_ENV, REELGATE_STORAGE_URL=s3://bucket/... and REELGATE_S3_ENDPOINT_URL=endpoint."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    bucket = f"reelgate-bench-{uuid.uuid4().hex[:10]}"
    try:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=S3_ENV["AWS_DEFAULT_REGION"],
            aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
        )
        client.create_bucket(Bucket=bucket)
        yield endpoint, bucket
    finally:
        server.stop()


def worker_token(env: dict[str, str]) -> str:
    """A new worker token (`reelgate workers tokens create --json`) on the database `env` names."""
    created = subprocess.run(
        [sys.executable, "-m", "reelgate.cli", "workers", "tokens", "create", "--name", "bench", "--json"],
        env=reelgate_env(env),
        capture_output=True,
        text=True,
        check=True,
    )
    token: str = json.loads(created.stdout)["token"]
    return token


def wait_for_workers(base_url: str, count: int, *, engine: str = "motion", timeout_s: float = 120) -> None:
    """Until the API at `base_url` counts `count` live workers for `engine` (its /readyz `live_workers`, the
    view its routing uses): a create before that may be refused with 503, routing follows live workers. Asking
    the database instead is not enough: the API reads the registry at most once a second."""
    deadline = time.monotonic() + timeout_s
    live = 0
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"{base_url}/readyz", timeout=5)
            live = int(answer.json().get("live_workers", {}).get(engine, 0)) if answer.status_code == 200 else 0
        except httpx.HTTPError:
            live = 0
        if live >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"only {live} of {count} workers live at {base_url} within {timeout_s:g} s")


class PostgresSchema:
    """A throwaway schema of the tests' PostgreSQL for one bench run (dropped at the end), like the tests use;
    `enabled=False` (or PostgreSQL unreachable: `problem` says why) gives None."""

    def __init__(self, *, enabled: bool = True, url: str = POSTGRES_URL) -> None:
        self.enabled = enabled
        self.url = url
        self.name = f"bench_{uuid.uuid4().hex[:12]}"
        self.problem: str | None = None
        self._created = False

    def _execute(self, sql: str) -> None:
        asyncio.run(_pg_execute(self.url, sql))

    def __enter__(self) -> PostgresSchema | None:
        if not self.enabled:
            return None
        try:
            self._execute(f'CREATE SCHEMA "{self.name}"')
        except Exception as exc:
            self.problem = f"PostgreSQL not reachable at {self.url}: {exc}"
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


def prepare_load(home: Path, schema: PostgresSchema | None, **overrides: object) -> Load:
    values: dict[str, object] = dict(overrides)
    if schema is not None:
        values.update(database_url=POSTGRES_URL, database_schema=schema.name)
    settings, key = prepared_settings(home, idle_worker=True, **values)
    return Load(settings=settings, key=key, backend="PostgreSQL" if schema is not None else "SQLite")


class EngineOnlyContext:
    """What an engine's `run` needs of a job's context, for timing the engine alone: no queue, no lease,
    never cancelled, progress dropped."""

    def __init__(self, scratch_dir: Path) -> None:
        self.scratch_dir = scratch_dir

    def report_progress(self, fraction: float) -> None:
        pass

    def cancelled(self) -> bool:
        return False
