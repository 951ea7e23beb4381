"""Durability with real processes: kill -9 a worker mid-task, freeze a worker past its lease (a stale writer),
and kill -9 the whole embedded server. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import httpx
import pytest

from reelgate.config import DEFAULT_MODEL, Settings
from reelgate.db.models import Account, ApiKey, Task
from reelgate.resources import database_for
from tests.conftest import (
    LONG_RUN_SHORT_SIDE_PX,
    Backend,
    advertise_worker,
    auth,
    create_key,
    make_settings,
    migrate_db,
    settings_env,
    wait_for_live_worker,
)
from tests.e2e.processes import Processes, free_port, ready, wait_until
from tests.images import astronaut, data_uri

pytestmark = pytest.mark.slow


def read_task(settings: Settings, task_id: str) -> Task:
    async def run() -> Task:
        db = database_for(settings)
        try:
            async with db.read() as session:
                task = await session.get(Task, task_id)
                assert task is not None
                return task
        finally:
            await db.dispose()

    return asyncio.run(run())


def balance(settings: Settings, plaintext: str) -> int:
    async def run() -> int:
        db = database_for(settings)
        try:
            async with db.read() as session:
                key = await session.get(ApiKey, plaintext.split("_")[1])
                assert key is not None
                account = await session.get(Account, key.account_id)
                assert account is not None
                return account.balance_millicredits - account.held_millicredits
        finally:
            await db.dispose()

    return asyncio.run(run())


def crash_settings(tmp_path: Path, backend: Backend) -> Settings:
    # A short lease so recovery is quick; long 10 s jobs so a run lasts long enough to be caught mid-way.
    settings = make_settings(
        tmp_path / "home", backend, lease_s=2.0, poll_interval_s=0.2, motion_short_side_px=LONG_RUN_SHORT_SIDE_PX
    )
    migrate_db(settings)
    # Tasks are created before the worker processes start: this advert stands for them in the registry.
    advertise_worker(settings)
    return settings


def create_via_api(base_url: str, key: str, duration: int = 10) -> str:
    body = {"model": DEFAULT_MODEL, "prompt": "zoom in", "image_urls": [data_uri(astronaut())], "duration": duration}
    response = httpx.post(f"{base_url}/v1/videos/generations", json=body, headers=auth(key), timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def create_direct(settings: Settings, key: str) -> str:
    """Create through the real app in this process (no server needed for worker-only scenarios)."""
    from fastapi.testclient import TestClient

    from reelgate.app import create_app

    with TestClient(create_app(settings, workers=0)) as client:
        body = {"model": DEFAULT_MODEL, "prompt": "zoom in", "image_urls": [data_uri(astronaut())], "duration": 10}
        response = client.post("/v1/videos/generations", json=body, headers=auth(key))
        assert response.status_code == 200, response.text
        return str(response.json()["id"])


def test_kill_9_worker_mid_task_is_recovered(tmp_path: Path, backend: Backend, processes: Processes) -> None:
    settings = crash_settings(tmp_path, backend)
    key = create_key(settings, credits=100)
    task_id = create_direct(settings, key)
    env = settings_env(settings)
    first = processes.start("worker-a", ["worker", "--concurrency", "1"], env)
    wait_until(lambda: read_task(settings, task_id).progress > 0, 60, "worker A to make progress")
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    killed = read_task(settings, task_id)
    assert killed.status == "processing" and killed.attempt == 1
    processes.start("worker-b", ["worker", "--concurrency", "1"], env)
    done = wait_until(
        lambda: (t := read_task(settings, task_id)).status == "completed" and t, 120, "worker B to complete the task"
    )
    assert done.attempt == 2
    assert (settings.home / "videos" / f"{task_id}-a2.mp4").is_file()
    assert balance(settings, key) == 90_000  # captured once


def test_frozen_worker_cannot_overwrite_the_winner(tmp_path: Path, backend: Backend, processes: Processes) -> None:
    settings = crash_settings(tmp_path, backend)
    key = create_key(settings, credits=100)
    task_id = create_direct(settings, key)
    env = settings_env(settings)
    stale = processes.start("worker-a", ["worker", "--concurrency", "1"], env)
    wait_until(lambda: read_task(settings, task_id).progress > 0, 60, "worker A to make progress")
    os.kill(stale.pid, signal.SIGSTOP)
    processes.start("worker-b", ["worker", "--concurrency", "1"], env)
    wait_until(lambda: read_task(settings, task_id).status == "completed", 120, "worker B to complete")
    os.kill(stale.pid, signal.SIGCONT)
    # A wakes up believing it holds the task; its heartbeat or its final write must be refused.
    wait_until(
        lambda: (
            ("lease" in processes.log("worker-a") and "lost" in processes.log("worker-a"))
            or "stopped" in processes.log("worker-a")
        ),
        60,
        "worker A to notice it lost the lease",
    )
    task = read_task(settings, task_id)
    assert task.status == "completed" and task.attempt == 2 and task.result_key == f"{task_id}-a2.mp4"
    assert not (settings.home / "videos" / f"{task_id}-a1.mp4").exists()
    assert balance(settings, key) == 90_000


def test_kill_9_serve_loses_nothing(tmp_path: Path, backend: Backend, processes: Processes) -> None:
    settings = crash_settings(tmp_path, backend)
    key = create_key(settings, credits=100)
    env = settings_env(settings)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    args = ["serve", "--port", str(port), "--workers", "1"]
    server = processes.start("serve-1", args, env)
    wait_until(lambda: ready(base_url), 30, "the server to start")
    task_ids = [create_via_api(base_url, key) for _ in range(3)]
    wait_until(lambda: read_task(settings, task_ids[0]).progress > 0, 60, "the first task to make progress")
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    processes.start("serve-2", args, env)
    wait_until(lambda: ready(base_url), 30, "the server to restart")
    for task_id in task_ids:
        wait_until(lambda tid=task_id: read_task(settings, tid).status == "completed", 180, f"{task_id} to complete")
        answer = httpx.get(f"{base_url}/v1/tasks/{task_id}", headers=auth(key), timeout=10).json()
        assert answer["status"] == "completed" and answer["results"]
    assert balance(settings, key) == 70_000
    metrics = httpx.get(f"{base_url}/metrics", timeout=10).text
    assert 'reelgate_engine_seconds_count{engine="motion",outcome="completed"}' in metrics
    assert 'reelgate_tasks{status="completed"} 3.0' in metrics


def test_api_only_server_and_standalone_worker(tmp_path: Path, backend: Backend, processes: Processes) -> None:
    """How a second machine joins: `serve --workers 0` queues, a separate `reelgate worker` runs the task; with no
    worker at all the API refuses the task instead of queueing what nobody would run."""
    settings = make_settings(tmp_path / "home", backend, lease_s=2.0, poll_interval_s=0.2)
    migrate_db(settings)
    key = create_key(settings, credits=100)
    env = settings_env(settings)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env["REELGATE_PUBLIC_URL"] = base_url
    processes.start("api", ["serve", "--port", str(port), "--workers", "0"], env)
    wait_until(lambda: ready(base_url), 30, "the API to start")
    body = {"model": DEFAULT_MODEL, "prompt": "zoom in", "image_urls": [data_uri(astronaut())], "duration": 5}
    refused = httpx.post(f"{base_url}/v1/videos/generations", json=body, headers=auth(key), timeout=30)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "30", refused.text
    assert refused.json()["error"]["fallback_suggestion"] == "retry after 30 seconds"
    processes.start("worker", ["worker", "--engines", "motion", "--concurrency", "2"], env)
    wait_for_live_worker(settings)
    task_id = create_via_api(base_url, key, duration=5)
    wait_until(lambda: read_task(settings, task_id).status == "completed", 120, "the worker to complete it")
    answer = httpx.get(f"{base_url}/v1/tasks/{task_id}", headers=auth(key), timeout=10).json()
    video = httpx.get(answer["results"][0], timeout=10)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    # Structured logs: JSON lines, and every line about the task carries its id.
    lines = [json.loads(line) for line in processes.log("worker").splitlines() if line.startswith("{")]
    about_task = [line for line in lines if line["msg"] in ("claimed", "completed")]
    assert [line["msg"] for line in about_task] == ["claimed", "completed"]
    assert all(line["task_id"] == task_id for line in about_task)
