"""Do 200 open event streams slow task processing? SQLite: `reelgate serve --workers 0` (the API and its one
stream watcher, which polls the database for the streamed tasks) and a standalone `reelgate worker
--concurrency 2`. The same batch of tasks runs without streams (the baseline) and with 200 streams following
its tasks, alternately, in one run.

    .venv/bin/python bench/event_streams.py [--tasks 16] [--streams 200] [--rounds 2] [--quick]

Each batch: the tasks are created and the streams opened (each has had its first event) while no worker
runs; then a worker starts and the batch runs with every stream open. So the figures are those of open
streams, not of opening them (an open costs about what two GETs cost).

Figures: a task's processing time (`finished_at - started_at`, written by the worker's own claim and finish),
the batch's wall time (first claim to last finish), and the API process's CPU time while the worker runs,
each with the ratio streams/baseline. The streams' client runs in this process, on the same 2 cores: its CPU is in
neither server figure, but it competes for the cores, as any other load on the machine would.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import statistics
import time
from pathlib import Path

import httpx
import numpy as np
from _common import free_port, fresh_home, percentile, prepared_settings, settings_env, start_process, wait_ready
from PIL import Image
from skimage import data
from sqlalchemy import select

from reelgate.config import Settings
from reelgate.db.models import Task
from reelgate.queue.states import UNFINISHED
from reelgate.resources import database_for


def _image_uri() -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(data.astronaut())[::2, ::2]).save(buffer, format="JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


BODY = {"model": "kling-o1-image-to-video", "prompt": "slow zoom in", "duration": 5, "image_urls": [_image_uri()]}


async def _finished(settings: Settings, ids: list[str]) -> list[Task] | None:
    db = database_for(settings)
    try:
        async with db.read() as session:
            rows = list((await session.scalars(select(Task).where(Task.id.in_(ids)))).all())
    finally:
        await db.dispose()
    return None if any(row.status in UNFINISHED for row in rows) else rows


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _follow(client: httpx.AsyncClient, task_id: str, opened: asyncio.Event, counter: list[int]) -> int:
    """Read the stream to its end; the number of events it delivered. Counts itself open at its first event."""
    events = 0
    async with client.stream("GET", f"/v1/tasks/{task_id}/events") as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                events += 1
                if events == 1:
                    counter[0] += 1
                    opened.set()
                if line.split(":", 1)[1].strip() in ("completed", "failed"):
                    break
    return events


async def batch(
    settings: Settings, base_url: str, key: str, tasks: int, streams: int, api_pid: int, env: dict[str, str]
) -> dict[str, float]:
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10)
    timeout = httpx.Timeout(60, read=120)
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, limits=limits, timeout=timeout
    ) as client:
        ids = []
        for _ in range(tasks):
            response = await client.post("/v1/videos/generations", json=BODY)
            response.raise_for_status()
            ids.append(response.json()["id"])
        opened, counter = asyncio.Event(), [0]
        followers = [asyncio.create_task(_follow(client, ids[n % tasks], opened, counter)) for n in range(streams)]
        while counter[0] < streams:
            opened.clear()
            await asyncio.wait_for(opened.wait(), timeout=60)
        cpu_before = cpu_s(api_pid)
        worker = start_process(
            ["-m", "reelgate.cli", "worker", "--concurrency", "2"], env, settings.home / f"worker-{time.time()}.log"
        )
        try:
            rows = None
            while rows is None:
                await asyncio.sleep(0.2)
                rows = await _finished(settings, ids)
            cpu_api = cpu_s(api_pid) - cpu_before
        finally:
            worker.terminate()
            worker.wait(timeout=30)
        delivered = await asyncio.gather(*followers)
    failed = [row.id for row in rows if row.status != "completed"]
    if failed:
        raise RuntimeError(f"tasks failed: {failed}")
    processing = [row.finished_at - row.started_at for row in rows if row.finished_at and row.started_at]
    return {
        "p50_s": percentile(processing, 50),
        "mean_s": statistics.fmean(processing),
        "wall_s": max(row.finished_at or 0 for row in rows) - min(row.started_at or 0 for row in rows),
        "api_cpu_s": cpu_api,
        "events": float(sum(delivered)),
        "streams_ended": float(sum(1 for d in delivered if d > 0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="6 tasks, 1 round: a smoke run")
    options = parser.parse_args()
    if options.quick:
        options.tasks, options.rounds = 6, 1
    home = fresh_home("events")
    # The idle advert lets the API accept a batch while no worker runs (each batch's worker starts after its
    # streams are open); the worker that then starts registers beside it and claims the batch.
    settings, key = prepared_settings(home, idle_worker=True, motion_short_side_px=240, poll_interval_s=0.5)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = settings_env(settings)
    server = start_process(
        ["-m", "reelgate.cli", "serve", "--port", str(port), "--workers", "0"], env, home / "serve.log"
    )
    results: dict[str, list[dict[str, float]]] = {"baseline": [], "streams": []}
    try:
        wait_ready(f"{base_url}/readyz")
        asyncio.run(batch(settings, base_url, key, 2, 0, server.pid, env))  # warm-up
        for _ in range(options.rounds):
            for mode, streams in (("baseline", 0), ("streams", options.streams)):
                figures = asyncio.run(batch(settings, base_url, key, options.tasks, streams, server.pid, env))
                results[mode].append(figures)
    finally:
        server.terminate()
        server.wait(timeout=30)

    def mean(mode: str, figure: str) -> float:
        return statistics.fmean(run[figure] for run in results[mode])

    print(
        f"event_streams: SQLite, serve --workers 0 + worker --concurrency 2, {options.tasks} tasks (5 s, 240 px) "
        "per batch, "
        f"{options.rounds} round(s)"
    )
    for mode, label in (("baseline", "no streams"), ("streams", f"{options.streams} streams")):
        print(
            f"  {label:12} processing p50 {mean(mode, 'p50_s'):6.3f} s  mean {mean(mode, 'mean_s'):6.3f} s  "
            f"batch wall {mean(mode, 'wall_s'):6.2f} s  API CPU {mean(mode, 'api_cpu_s'):5.2f} s"
        )
    streamed = results["streams"]
    print(
        f"  streams: {sum(r['streams_ended'] for r in streamed):.0f}/{options.streams * len(streamed)} ended with the "
        f"terminal event, {sum(r['events'] for r in streamed):.0f} events delivered"
    )
    print(f"  ratio processing p50 streams/baseline = {mean('streams', 'p50_s') / mean('baseline', 'p50_s'):.2f}")
    print(f"  ratio batch wall streams/baseline = {mean('streams', 'wall_s') / mean('baseline', 'wall_s'):.2f}")
    print(
        f"  API CPU for {options.streams} open streams: {mean('streams', 'api_cpu_s'):.2f} s over the batch "
        f"({mean('baseline', 'api_cpu_s'):.2f} s without)"
    )


if __name__ == "__main__":
    main()
