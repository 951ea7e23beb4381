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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=100)
    options = parser.parse_args()
    results = {}
    for mode in ("embedded", "polling"):
        home = fresh_home(f"queue-{mode}")
        settings, key = prepared_settings(home, motion_short_side_px=64, poll_interval_s=0.5)
        env = settings_env(settings)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        workers = "4" if mode == "embedded" else "0"
        processes = [
            start_process(
                ["-m", "reelgate.cli", "serve", "--port", str(port), "--workers", workers], env, home / "serve.log"
            )
        ]
        if mode == "polling":
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
    print(f"queue_latency: commit -> claim, {options.tasks} tasks, SQLite")
    print(f"  embedded (in-process wake-up)   {summary_ms(results['embedded'])}")
    print(f"  standalone worker (0.5 s poll)  {summary_ms(results['polling'])}")
    ratio = percentile(results["polling"], 50) / max(percentile(results["embedded"], 50), 1e-9)
    print(f"  ratio polling/embedded p50 = {ratio:.1f}x")


if __name__ == "__main__":
    main()
