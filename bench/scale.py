"""Tasks per minute with 1, 2 and 4 motion worker processes on PostgreSQL and S3, against one embedded `reelgate
serve` on SQLite in the same run.

    .venv/bin/python bench/scale.py [--tasks 24] [--short-side-px 240] [--workers 1,2,4]
    .venv/bin/python bench/scale.py --quick       # 4 small tasks, 1 and 2 workers: a smoke run, about a minute

- Baseline: one `reelgate serve` on SQLite and local disk with its in-process workers (one job slot per core,
  the embedded default).
- Scale-out: one `reelgate serve --workers 0` and N `reelgate worker --concurrency 1` processes on one
  PostgreSQL (a fresh schema per setup) and an S3 bucket (moto's server on loopback, in this process): the
  many-machines topology of docs/deployment.md, here on one machine.

Every worker has registered before the first create; the tasks are then created at once, and the figure is
tasks / (last finish - first create), from the task rows. Motion is CPU-bound: on a machine with fewer cores
than worker processes the ratio stops growing at the core count, and the API, PostgreSQL, the S3 server and
this client share those cores (the printout says how many there are, and the load when it started).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import subprocess
import time
from dataclasses import dataclass

import httpx
import numpy as np
from _common import (
    S3_ENV,
    free_port,
    fresh_home,
    pg_schema,
    prepared_settings,
    s3_bucket,
    settings_env,
    start_process,
    wait_for_workers,
    wait_ready,
)
from PIL import Image
from skimage import data
from sqlalchemy import select

from reelgate.config import DEFAULT_MODEL, Settings
from reelgate.db.models import Task
from reelgate.resources import database_for


def _image_uri() -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(data.astronaut())[::2, ::2]).save(buffer, format="JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


BODY = {"model": DEFAULT_MODEL, "prompt": "slow zoom in", "duration": 5, "image_urls": [_image_uri()]}


@dataclass(frozen=True)
class Run:
    label: str
    tasks: int
    completed: int
    seconds: float

    @property
    def per_minute(self) -> float:
        return self.completed / self.seconds * 60 if self.seconds > 0 else float("nan")


async def _tasks(settings: Settings, ids: list[str]) -> list[Task]:
    db = database_for(settings)
    try:
        async with db.read() as session:
            return list(await session.scalars(select(Task).where(Task.id.in_(ids))))
    finally:
        await db.dispose()


def _burst(settings: Settings, key: str, base_url: str, tasks: int, label: str, timeout_s: float) -> Run:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        ids = []
        for _ in range(tasks):
            answer = client.post("/v1/videos/generations", json=BODY)
            answer.raise_for_status()
            ids.append(str(answer.json()["id"]))
    deadline = time.monotonic() + timeout_s
    while True:
        rows = asyncio.run(_tasks(settings, ids))
        if all(row.status in ("completed", "failed") for row in rows):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{label}: tasks unfinished after {timeout_s:g} s")
        time.sleep(0.2)
    first = min(row.created_at for row in rows)
    last = max(row.finished_at or first for row in rows)
    return Run(label, tasks, sum(row.status == "completed" for row in rows), last - first)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def embedded(tasks: int, short_side_px: int, slots: int, timeout_s: float) -> Run:
    home = fresh_home("scale-embedded")
    settings, key = prepared_settings(home, motion_short_side_px=short_side_px)
    port = free_port()
    args = ["-m", "reelgate.cli", "serve", "--port", str(port), "--workers", str(slots)]
    processes = [start_process(args, settings_env(settings), home / "serve.log")]
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", timeout_s=120)
        return _burst(
            settings, key, f"http://127.0.0.1:{port}", tasks, f"embedded ({slots} slots)", timeout_s=timeout_s
        )
    finally:
        _stop(processes)


def scaled_out(
    workers: int, tasks: int, short_side_px: int, postgres_url: str, endpoint: str, bucket: str, timeout_s: float
) -> Run | None:
    schema = asyncio.run(pg_schema(postgres_url))
    if schema is None:
        return None
    home = fresh_home(f"scale-{workers}")
    storage = f"s3://{bucket}/scale-{workers}"
    settings, key = prepared_settings(
        home,
        motion_short_side_px=short_side_px,
        database_url=postgres_url,
        database_schema=schema,
        storage_url=storage,
        s3_endpoint_url=endpoint,
    )
    env = {
        **settings_env(settings),
        **S3_ENV,
        "REELGATE_STORAGE_URL": storage,
        "REELGATE_S3_ENDPOINT_URL": endpoint,
    }
    port = free_port()
    serve = ["-m", "reelgate.cli", "serve", "--port", str(port), "--workers", "0"]
    processes = [start_process(serve, env, home / "serve.log")]
    try:
        for index in range(workers):
            # Each worker process its own home, as on its own machine: nothing is shared but the database
            # and the bucket.
            worker_env = {**env, "REELGATE_HOME": str(home / f"worker-{index}")}
            args = ["-m", "reelgate.cli", "worker", "--engines", "motion", "--concurrency", "1"]
            processes.append(start_process(args, worker_env, home / f"worker-{index}.log"))
        wait_ready(f"http://127.0.0.1:{port}/readyz", timeout_s=120)
        wait_for_workers(f"http://127.0.0.1:{port}", workers)
        label = f"{workers} worker process{'es' if workers > 1 else ''}"
        return _burst(settings, key, f"http://127.0.0.1:{port}", tasks, label, timeout_s=timeout_s)
    finally:
        _stop(processes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=24, help="tasks per setup")
    parser.add_argument("--short-side-px", type=int, default=240, help="motion output size")
    parser.add_argument("--workers", default=None, help="worker process counts of the scale-out setups (1,2,4)")
    parser.add_argument("--postgres-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--quick", action="store_true", help="4 tasks at 64 px, 1 and 2 workers: a smoke run")
    options = parser.parse_args()
    if options.quick:
        options.tasks, options.short_side_px = 4, 64
    workers = options.workers or ("1,2" if options.quick else "1,2,4")
    counts = [int(n) for n in workers.split(",") if n.strip()]
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    timeout_s = 120 + 30 * options.tasks
    baseline = embedded(options.tasks, options.short_side_px, cores, timeout_s)
    runs: list[Run] = []
    with s3_bucket() as (endpoint, bucket):
        for workers in counts:
            run = scaled_out(
                workers, options.tasks, options.short_side_px, options.postgres_url, endpoint, bucket, timeout_s
            )
            if run is None:
                break
            runs.append(run)
    print(
        f"scale: {options.tasks} tasks per setup (5 s, {options.short_side_px} px short side, motion), created at "
        f"once; {cores} cores here, load average {load:.1f} at the start"
    )
    print(f"  SQLite + local disk, one serve, {cores} in-process slot(s)   {_figure(baseline)}")
    for run in runs:
        print(f"  PostgreSQL + S3, serve --workers 0 + {run.label:<18} {_figure(run)}", end="")
        print(f"  ratio {run.per_minute / baseline.per_minute:.2f}x embedded")
    if not runs:
        print(f"  PostgreSQL: not reachable at {options.postgres_url}, scale-out skipped")
    elif len(runs) > 1:
        one = runs[0].per_minute
        print("  scaling vs 1 worker process: " + ", ".join(f"{r.label} {r.per_minute / one:.2f}x" for r in runs[1:]))
    print(
        f"  {cores} cores limit this: the engine is CPU-bound, so past {cores} worker processes more only share the "
        "same cores (with the API, PostgreSQL, the S3 server and this client); on separate machines each worker "
        "brings its own"
    )


def _figure(run: Run) -> str:
    failed = run.tasks - run.completed
    failures = f", {failed} failed" if failed else ""
    return f"{run.per_minute:7.1f} tasks/min ({run.completed} in {run.seconds:6.1f} s{failures})"


if __name__ == "__main__":
    main()
