"""Helpers shared by the benchmarks: percentiles, a throwaway home with a migrated SQLite database and a key,
and running a server process until it is ready."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from reelgate.accounts import service as accounts
from reelgate.accounts.repository import KeyLimits
from reelgate.config import Settings
from reelgate.db import migrate
from reelgate.engines.base import Availability
from reelgate.queue import registry
from reelgate.resources import database_for


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
