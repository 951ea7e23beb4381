"""Time from a create's commit to a worker's claim, in embedded mode (`reelgate serve`: API and workers in
one process, woken in-process), with a polling standalone worker (`reelgate worker`, 0.5 s poll) on the same
SQLite database as the baseline in the same run.

    .venv/bin/python bench/queue_latency.py [--tasks 100]

Latency = the task's claim time (`started_at`, written by the claiming UPDATE) minus its creation time
(`created_at`, stamped just before the create transaction commits): both from this machine's clock.
Tasks are created one at a time, spaced out, and cancelled once claimed, so a free slot is always there.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import time
import uuid

import asyncpg
import httpx
import numpy as np
from _common import (
    free_port,
    fresh_home,
    percentile,
    prepared_settings,
    settings_env,
    start_process,
    summary_ms,
    wait_ready,
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


async def _pg_schema(url: str) -> str | None:
    """A fresh schema on PostgreSQL, or None if it cannot be reached."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"), timeout=3)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    return schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--postgres-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--quick", action="store_true", help="10 tasks per mode: a smoke run")
    options = parser.parse_args()
    if options.quick:
        options.tasks = 10
    results = {}
    schema = asyncio.run(_pg_schema(options.postgres_url))
    for mode in ["embedded", "polling"] + (["postgres-notify"] if schema else []):
        home = fresh_home(f"queue-{mode}")
        notify = mode == "postgres-notify"
        database = {"database_url": options.postgres_url, "database_schema": schema} if notify else {}
        settings, key = prepared_settings(home, motion_short_side_px=64, poll_interval_s=0.5, **database)
        env = settings_env(settings)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        workers = "4" if mode == "embedded" else "0"
        processes = [
            start_process(
                ["-m", "reelgate.cli", "serve", "--port", str(port), "--workers", workers], env, home / "serve.log"
            )
        ]
        if mode != "embedded":
            processes.append(
                start_process(["-m", "reelgate.cli", "worker", "--concurrency", "4"], env, home / "worker.log")
            )
        try:
            wait_ready(f"{base_url}/readyz")
            measure(settings, key, base_url, 5)  # warm-up
            results[mode] = measure(settings, key, base_url, options.tasks)
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
    print(f"queue_latency: commit -> claim, {options.tasks} tasks")
    print(f"  SQLite, embedded (in-process wake-up)        {summary_ms(results['embedded'])}")
    print(f"  SQLite, standalone worker (0.5 s poll)       {summary_ms(results['polling'])}")
    if "postgres-notify" in results:
        print(f"  PostgreSQL, standalone worker (LISTEN/NOTIFY) {summary_ms(results['postgres-notify'])}")
    else:
        print(f"  PostgreSQL: not reachable at {options.postgres_url}, skipped")
    embedded_p50 = max(percentile(results["embedded"], 50), 1e-9)
    for mode in ("polling", "postgres-notify"):
        if mode in results:
            print(f"  ratio {mode}/embedded p50 = {percentile(results[mode], 50) / embedded_p50:.1f}x")


if __name__ == "__main__":
    main()
