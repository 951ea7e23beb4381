"""A revoked key is refused within 1 s by every API process, though each keeps verified keys in memory
(accounts/key_cache.py): two `reelgate serve` processes on one database (SQLite, PostgreSQL), the key
revoked from a third (the CLI); and `serve --api-processes 2` (its processes share the port) with Redis."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from reelgate.cli import app
from tests.conftest import (
    REDIS_URL,
    Backend,
    auth,
    create_key,
    make_settings,
    migrate_db,
    require_redis,
    settings_env,
)
from tests.e2e.processes import Processes, free_port, ready, start_api_processes, wait_until

pytestmark = pytest.mark.slow

BOUND_S = 1.0
# Far longer than the bound: a process that missed the revoke would keep the key this long.
CACHE_ENV = {"REELGATE_KEY_CACHE_S": "300"}


def _status(base: str, key: str) -> int:
    # A new connection each time: on a shared port, the kernel hands each to one of the processes.
    return httpx.get(f"{base}/v1/tasks", headers=auth(key), timeout=5).status_code


def _revoke_and_time_refusals(env: dict[str, str], key: str, bases: list[str], asks: int) -> None:
    """Every process has verified (and cached) the key; it is revoked from another process; then each of
    `asks` askers per base must see a 401 within the bound, and it stays so."""
    for base in bases:
        for _ in range(asks):
            assert _status(base, key) == 200
    result = CliRunner().invoke(app, ["keys", "revoke", key], env=env)
    assert result.exit_code == 0, result.output
    revoked_at = time.monotonic()  # the revoke has committed
    pending = {(base, ask) for base in bases for ask in range(asks)}
    while pending:
        elapsed = time.monotonic() - revoked_at
        assert elapsed < BOUND_S, f"{sorted(pending)} still accepted the key {elapsed:.2f} s after its revoke"
        pending = {(base, ask) for base, ask in pending if _status(base, key) != 401}
        time.sleep(0.01)
    for base in bases:
        for _ in range(asks):
            assert _status(base, key) == 401


def test_a_revoked_key_is_refused_within_a_second_by_every_process(
    tmp_path: Path, backend: Backend, processes: Processes
) -> None:
    settings = make_settings(tmp_path / "home", backend)
    migrate_db(settings)
    env = {**settings_env(settings), **CACHE_ENV}
    bases = start_api_processes(processes, env)
    key = create_key(settings)
    _revoke_and_time_refusals(env, key, bases, asks=1)


def test_api_processes_share_the_port_and_each_refuses_a_revoked_key(
    tmp_path: Path, sqlite_backend: Backend, processes: Processes
) -> None:
    require_redis()
    settings = make_settings(tmp_path / "home", sqlite_backend)
    migrate_db(settings)
    env = {**settings_env(settings), **CACHE_ENV, "REELGATE_REDIS_URL": REDIS_URL}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes.start("api", ["serve", "--port", str(port), "--workers", "0", "--api-processes", "2"], env)
    wait_until(lambda: ready(base), 60, "serve --api-processes 2 to start")
    key = create_key(settings)
    # New connections are spread over the processes by the kernel: enough asks reach both.
    _revoke_and_time_refusals(env, key, [base], asks=8)


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the process tree from Linux's /proc")
@pytest.mark.parametrize("when", ["serving", "starting"])
def test_api_processes_stop_when_their_supervisor_is_killed(
    tmp_path: Path, sqlite_backend: Backend, processes: Processes, when: str
) -> None:
    """A supervisor killed with SIGKILL cannot stop its API processes: they notice and stop themselves, and
    the port is free for a new `serve`; those still starting when it died too (they never knew it alive)."""
    require_redis()
    settings = make_settings(tmp_path / "home", sqlite_backend)
    migrate_db(settings)
    env = {**settings_env(settings), "REELGATE_REDIS_URL": REDIS_URL}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    supervisor = processes.start("api", ["serve", "--port", str(port), "--workers", "0", "--api-processes", "2"], env)
    if when == "serving":
        wait_until(lambda: ready(base), 60, "serve --api-processes 2 to start")
    api = wait_until(lambda: (found := _children(supervisor.pid)) and len(found) >= 2 and found, 30, "its processes")
    supervisor.kill()
    supervisor.wait(timeout=10)
    wait_until(lambda: not any(_alive(pid) for pid in api), 30, "the orphaned API processes to stop")
    again = processes.start("api-again", ["serve", "--port", str(port), "--workers", "0"], env)
    wait_until(lambda: ready(base), 60, "a new serve on the same port")
    assert again.poll() is None


def test_api_processes_refuse_what_would_multiply_workers_or_limits(tmp_path: Path, sqlite_backend: Backend) -> None:
    settings = make_settings(tmp_path / "home", sqlite_backend)
    migrate_db(settings)
    env = settings_env(settings)
    with_workers = CliRunner().invoke(app, ["serve", "--api-processes", "2", "--workers", "2"], env=env)
    assert with_workers.exit_code == 1
    assert "--workers 0" in " ".join(with_workers.output.split())
    without_redis = CliRunner().invoke(app, ["serve", "--api-processes", "2", "--workers", "0"], env=env)
    assert without_redis.exit_code == 1
    assert "REELGATE_REDIS_URL" in " ".join(without_redis.output.split())
