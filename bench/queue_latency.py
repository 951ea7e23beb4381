"""Time from a create's commit to a worker's claim, in embedded mode (`reelgate serve`: API and workers in
one process, woken in-process), with a polling standalone worker (`reelgate worker`, 0.5 s poll) on the same
SQLite database as the baseline in the same run; on PostgreSQL, a standalone database worker woken by
LISTEN/NOTIFY, and a remote worker (`reelgate worker --server URL --token rgw_...`, no database access) that
claims through the API's long poll.

    .venv/bin/python bench/queue_latency.py [--tasks 100]
    .venv/bin/python bench/queue_latency.py --quick      # 10 tasks per mode: a smoke run

Latency = the task's claim time (`started_at`, written by the claiming UPDATE: the worker's own, or the API's
on behalf of a remote worker) minus its creation time (`created_at`, stamped just before the create
transaction commits): both from this machine's clock. Tasks are created one at a time, spaced out, and
cancelled once claimed, so a free slot is always there.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from _common import (
    free_port,
    fresh_home,
    percentile,
    pg_schema,
    prepared_settings,
    reelgate_env,
    settings_env,
    start_process,
    summary_ms,
    wait_for_workers,
    wait_ready,
    worker_token,
)
from PIL import Image
from skimage import data

from reelgate.config import Settings
from reelgate.db.models import Task
from reelgate.resources import database_for


def _image_uri() -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(data.astronaut())[::4, ::4]).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


BODY = {"model": "kling-o1-image-to-video", "prompt": "zoom", "duration": 5, "image_urls": [_image_uri()]}


async def claim_latency(settings: Settings, task_id: str) -> float:
    db = database_for(settings)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            async with db.read() as session:
                task = await session.get(Task, task_id)
                if task is not None and task.started_at is not None:
                    return task.started_at - task.created_at
            await asyncio.sleep(0.005)
        raise RuntimeError(f"{task_id} was never claimed")
    finally:
        await db.dispose()


def measure(settings: Settings, key: str, base_url: str, tasks: int) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"}
    latencies = []
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        for _ in range(tasks):
            response = client.post("/v1/videos/generations", json=BODY)
            response.raise_for_status()
            task_id = response.json()["id"]
            latencies.append(asyncio.run(claim_latency(settings, task_id)))
            client.post(f"/v1/tasks/{task_id}/cancel")
            time.sleep(0.05)
    return latencies


MODES = {
    "embedded": "SQLite, embedded (in-process wake-up)        ",
    "polling": "SQLite, standalone worker (0.5 s poll)       ",
    "postgres-notify": "PostgreSQL, standalone worker (LISTEN/NOTIFY) ",
    "postgres-remote": "PostgreSQL, remote worker (HTTP long poll)   ",
}


def _processes(mode: str, settings: Settings, port: int, home: Path) -> list[subprocess.Popen[bytes]]:
    env = settings_env(settings)
    workers = "4" if mode == "embedded" else "0"
    serve = ["-m", "reelgate.cli", "serve", "--port", str(port), "--workers", workers]
    processes = [start_process(serve, env, home / "serve.log")]
    if mode in ("polling", "postgres-notify"):
        processes.append(
            start_process(["-m", "reelgate.cli", "worker", "--concurrency", "4"], env, home / "worker.log")
        )
    elif mode == "postgres-remote":
        # The API's URL and a token only: no database in its environment, a home of its own.
        remote = {k: v for k, v in env.items() if k not in ("REELGATE_DATABASE_URL", "REELGATE_DATABASE_SCHEMA")}
        remote.update({"REELGATE_HOME": str(home / "remote"), "REELGATE_WORKER_TOKEN": worker_token(env)})
        args = ["-m", "reelgate.cli", "worker", "--server", f"http://127.0.0.1:{port}", "--concurrency", "4"]
        processes.append(
            subprocess.Popen(
                [sys.executable, *args],
                env=reelgate_env(remote),
                stdout=(home / "remote.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
    return processes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--postgres-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--quick", action="store_true", help="10 tasks per mode: a smoke run")
    options = parser.parse_args()
    if options.quick:
        options.tasks = 10
    results: dict[str, list[float]] = {}
    modes = ["embedded", "polling"]
    probed = asyncio.run(pg_schema(options.postgres_url))  # None: PostgreSQL is not reachable
    reachable = probed is not None
    if reachable:
        modes += ["postgres-notify", "postgres-remote"]
    for mode in modes:
        home = fresh_home(f"queue-{mode}")
        overrides: dict[str, Any] = {"motion_short_side_px": 64, "poll_interval_s": 0.5}
        if mode.startswith("postgres"):  # a fresh schema per mode, so no mode sees another's tasks
            schema = probed if mode == "postgres-notify" else asyncio.run(pg_schema(options.postgres_url))
            overrides.update(database_url=options.postgres_url, database_schema=schema or "")
        settings, key = prepared_settings(home, **overrides)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        processes = _processes(mode, settings, port, home)
        try:
            wait_ready(f"{base_url}/readyz")
            if mode != "embedded":
                wait_for_workers(base_url, 1)  # routing refuses creates until a worker has registered
            measure(settings, key, base_url, 5)  # warm-up
            results[mode] = measure(settings, key, base_url, options.tasks)
        finally:
            # Workers first, the API last: a remote worker stopping hands in (or gives up) its running job
            # through the API, and with the API gone first it retries that call for minutes.
            for process in reversed(processes):
                process.terminate()
                process.wait(timeout=60)
    print(f"queue_latency: commit -> claim, {options.tasks} tasks")
    for mode, label in MODES.items():
        if mode in results:
            print(f"  {label}{summary_ms(results[mode])}")
    if not reachable:
        print(f"  PostgreSQL: not reachable at {options.postgres_url}, skipped")
    embedded_p50 = max(percentile(results["embedded"], 50), 1e-9)
    for mode in ("polling", "postgres-notify", "postgres-remote"):
        if mode in results:
            print(f"  ratio {mode}/embedded p50 = {percentile(results[mode], 50) / embedded_p50:.1f}x")
    if "postgres-notify" in results and "postgres-remote" in results:
        ratio = percentile(results["postgres-remote"], 50) / max(percentile(results["postgres-notify"], 50), 1e-9)
        print(f"  ratio postgres-remote/postgres-notify p50 = {ratio:.1f}x")


if __name__ == "__main__":
    main()
