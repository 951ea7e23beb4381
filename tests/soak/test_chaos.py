"""The chaos soak: the many-machines topology as real processes, with processes killed and frozen under it.

One PostgreSQL (a throwaway schema), S3 on loopback (moto's server), Redis; two API replicas (`serve --workers
0`), two database workers and two remote workers (a URL and a worker token, no database, no bucket
credentials). Tasks are created round-robin through both replicas (retried on the other replica, under the
same Idempotency-Key, when one is down), a third of them with a `callback_url` to a local HTTPS receiver.
While they run:

- every few seconds a random replica or worker is killed with SIGKILL and started again;
- a database worker is frozen (SIGSTOP) while it holds a task, until another worker has finished that task,
  then thawed (SIGCONT);
- the partition of a remote worker: it is frozen in the middle of handing in its work (tests/soak/proxy.py),
  another worker finishes its task, and after SIGCONT its late upload and finish are refused. Three times:
  frozen before asking for its poster's upload, after being given it, and after being given its video's.

At the end: every accepted task completed exactly once (one capture) or failed with a reason and its credits
released; every result link downloads a valid MP4 from the S3 server; the credits audit is clean; one
callback series per callback task and none for the others; once the orphan-input sweep has run (a replica
killed mid-create leaves the inline image of a task that was never written), the bucket holds exactly the
inputs and the winning attempts' videos and posters (nothing of a losing attempt); no process's home holds a
video or an input. It prints its figures.

    REELGATE_SOAK_TASKS=150 .venv/bin/python -m pytest tests/soak -s     # the issue's by-hand run

REELGATE_SOAK_TASKS (CI default 60), REELGATE_SOAK_CREATE_EVERY_S (1.0) and REELGATE_SOAK_KILL_EVERY_S (3)
size it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from reelgate.app import create_app
from reelgate.cli import app as cli
from reelgate.config import DEFAULT_MODEL, Settings
from reelgate.db.models import Task
from reelgate.media.video import probe_video
from reelgate.resources import database_for
from reelgate.tasks.sweep import ORPHAN_INPUT_GRACE_S, sweep_orphan_inputs
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
from tests.e2e.processes import Processes, free_port, ready, wait_until
from tests.e2e.test_crashes import balance
from tests.images import astronaut, data_uri
from tests.s3server import aws_environment, bucket_keys, new_bucket, s3_server
from tests.soak.proxy import Trap, TrapProxy
from tests.webhooks.receiver import Receiver, running_receiver

TASKS = int(os.environ.get("REELGATE_SOAK_TASKS", "60"))
# Beyond the suite's 300 s per test: a few minutes on a quiet 2-core machine, more when it is shared, and more
# again by hand with a bigger REELGATE_SOAK_TASKS.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900 + 10 * TASKS)]
CREATE_EVERY_S = float(os.environ.get("REELGATE_SOAK_CREATE_EVERY_S", "1.0"))
KILL_EVERY_S = float(os.environ.get("REELGATE_SOAK_KILL_EVERY_S", "3"))
# Short, so that what a dead or frozen worker held comes back within seconds.
LEASE_S = 3.0
PREFIX = "media"
IMAGE = data_uri(astronaut()[::2, ::2], "JPEG")
# What a video or an input would be on a disk.
MEDIA_SUFFIXES = {".mp4", ".jpg", ".jpeg", ".png", ".webp", ".part"}
# The three moments of the remote partition (tests/soak/proxy.py).
PARTITIONS: list[tuple[str, str]] = [("poster", "request"), ("poster", "answer"), ("video", "answer")]
LOST_LEASE = "finished but the lease was lost; result discarded"
STOPPED = "stopped: task cancelled or lease lost"


@dataclass
class Member:
    """One process of the deployment, restarted under the same name (and home, and port)."""

    name: str
    args: list[str]
    env: dict[str, str]
    home: Path
    base_url: str | None = None
    process: subprocess.Popen[bytes] | None = None
    runs: int = 0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


@dataclass
class Figures:
    kills: list[str] = field(default_factory=list)
    freezes: list[str] = field(default_factory=list)
    partitions: list[dict[str, Any]] = field(default_factory=list)
    orphan_inputs: int = 0


class Deployment:
    def __init__(self, tmp_path: Path, processes: Processes, settings: Settings, base_env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.processes = processes
        self.settings = settings
        self.base_env = base_env
        self.members: dict[str, Member] = {}
        self.lock = threading.Lock()

    def add(self, name: str, args: list[str], env: dict[str, str], *, port: int | None = None) -> Member:
        home = self.tmp_path / f"{name}-home"
        member = Member(name, args, {**env, "REELGATE_HOME": str(home)}, home)
        if port is not None:
            member.base_url = f"http://127.0.0.1:{port}"
        self.members[name] = member
        self.start(member)
        return member

    def start(self, member: Member) -> None:
        member.runs += 1
        member.process = self.processes.start(f"{member.name}.{member.runs}", member.args, member.env)

    def log(self, name: str) -> str:
        member = self.members[name]
        return "".join(self.processes.log(f"{name}.{run}") for run in range(1, member.runs + 1))

    def kill_and_restart(self, name: str) -> None:
        with self.lock:
            member = self.members[name]
            assert member.process is not None
            member.process.kill()
            member.process.wait(timeout=30)
            self.start(member)


def read_tasks(settings: Settings, ids: list[str] | None = None) -> dict[str, Task]:
    async def run() -> dict[str, Task]:
        db = database_for(settings)
        try:
            async with db.read() as session:
                query = select(Task) if ids is None else select(Task).where(Task.id.in_(ids))
                return {task.id: task for task in await session.scalars(query)}
        finally:
            await db.dispose()

    return asyncio.run(run())


def read_task(settings: Settings, task_id: str) -> Task:
    return read_tasks(settings, [task_id])[task_id]


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    """The S3 server, a bucket, and the AWS variables of the processes that may use it."""
    with s3_server() as endpoint:
        aws = {k: v for k, v in aws_environment().items() if v is not None}
        saved = {k: os.environ.get(k) for k in aws_environment()}
        os.environ.update(aws)  # for the bucket made here, and the listings and downloads of the checks
        for name, value in aws_environment().items():
            if value is None:
                os.environ.pop(name, None)
        try:
            yield endpoint, new_bucket(endpoint), aws
        finally:
            for name, old in saved.items():
                if old is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = old


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    with running_receiver(tmp_path) as running:
        yield running


def test_chaos_soak(
    tmp_path: Path,
    postgres_backend: Backend,
    s3: tuple[str, str, dict[str, str]],
    receiver: Receiver,
    processes: Processes,
    capsys: pytest.CaptureFixture[str],
) -> None:
    require_redis()
    endpoint, bucket, aws = s3
    settings = make_settings(
        tmp_path / "admin-home",
        postgres_backend,
        lease_s=LEASE_S,
        poll_interval_s=0.2,
        max_attempts=4,
        storage_url=f"s3://{bucket}/{PREFIX}",
        s3_endpoint_url=endpoint,
        redis_url=REDIS_URL,
        egress_ca_bundle=receiver.ca_file,
        motion_short_side_px=64,
    )
    migrate_db(settings)
    admin_env = settings_env(settings)
    initial_credits = 100_000
    key = create_key(settings, credits=initial_credits)
    shared = {
        **admin_env,
        **aws,
        "REELGATE_STORAGE_URL": settings.storage_url,
        "REELGATE_S3_ENDPOINT_URL": endpoint,
        "REELGATE_REDIS_URL": REDIS_URL,
        "REELGATE_EGRESS_CA_BUNDLE": receiver.ca_file,
        "REELGATE_MAX_ATTEMPTS": str(settings.max_attempts),
        # The same on every process, as docs/deployment.md says: links signed by one verify on all.
        "REELGATE_SECRET_KEY": secrets.token_urlsafe(32),
        "REELGATE_LOG_LEVEL": "INFO",
    }
    deployment = Deployment(tmp_path, processes, settings, shared)

    # Two API replicas on fixed ports, so a restart comes back where clients and workers look for it.
    replicas = []
    for index in (1, 2):
        port = free_port()
        env = {**shared, "REELGATE_PUBLIC_URL": f"http://127.0.0.1:{port}"}
        args = ["serve", "--port", str(port), "--workers", "0"]
        replicas.append(deployment.add(f"api-{index}", args, env, port=port))
    for replica in replicas:
        assert replica.base_url is not None
        wait_until(lambda url=replica.base_url: ready(url), 60, f"{replica.name} to start")
    for index in (1, 2):
        deployment.add(f"db-worker-{index}", ["worker", "--engines", "motion", "--concurrency", "1"], shared)

    # Remote workers: their environment names no database, no bucket, no AWS credential and no Redis.
    token = _worker_token(admin_env)
    remote_env = {k: v for k, v in os.environ.items() if not k.startswith(("REELGATE_", "AWS_"))}
    remote_env.update(
        {
            "REELGATE_MOTION_SHORT_SIDE_PX": str(settings.motion_short_side_px),
            "REELGATE_LOG_JSON": "true",
            "REELGATE_WORKER_TOKEN": token,
        }
    )
    assert replicas[1].base_url is not None
    proxy = TrapProxy(int(replicas[1].base_url.rsplit(":", 1)[1]))
    remote_args = ["worker", "--engines", "motion", "--concurrency", "1", "--server"]
    deployment.add("remote-1", [*remote_args, str(replicas[0].base_url)], remote_env)
    deployment.add("remote-2", [*remote_args, proxy.url], remote_env)
    wait_until(lambda: _live_workers(settings) >= 4, 90, "four workers to register")

    figures = Figures()
    stop_chaos = threading.Event()
    partitions_done = threading.Event()
    freeze_done = threading.Event()

    # --- the remote partition, three times ----------------------------------------------------------------
    def partition_hold(stored: str, when: str) -> Any:
        def hold(task_id: str, attempt: int) -> None:
            worker = deployment.members["remote-2"]
            with deployment.lock:  # nobody restarts anything while we hold a pid
                os.kill(worker.pid, signal.SIGSTOP)
            frozen_at = time.monotonic()
            try:
                ended = wait_until(
                    lambda: (
                        (t := read_task(settings, task_id)).status in ("completed", "failed")
                        and t.attempt > attempt
                        and t
                    ),
                    180,
                    f"another worker to finish {task_id} while remote-2 is frozen",
                )
            finally:
                os.kill(worker.pid, signal.SIGCONT)
            figures.partitions.append(
                {
                    "task_id": task_id,
                    "attempt": attempt,
                    "stored": stored,
                    "when": when,
                    "winner_attempt": ended.attempt,
                    "frozen_s": time.monotonic() - frozen_at,
                }
            )
            arm_next()

        return hold

    pending_partitions = list(PARTITIONS)

    def arm_next() -> None:
        if not pending_partitions:
            partitions_done.set()
            return
        stored, when = pending_partitions.pop(0)
        done = frozenset(p["task_id"] for p in figures.partitions)
        proxy.arm(Trap(stored, when, partition_hold(stored, when), not_for=done))  # type: ignore[arg-type]

    arm_next()

    # --- freezing a database worker that holds a task --------------------------------------------------------
    def freeze_db_worker() -> None:
        worker = deployment.members["db-worker-1"]
        while not stop_chaos.is_set():
            with deployment.lock:
                pid = worker.pid
                held = _task_held_by(settings, pid)
                if held is not None:
                    os.kill(pid, signal.SIGSTOP)
                    break
            time.sleep(0.05)
        else:
            return
        task_id, attempt = held
        try:
            wait_until(
                lambda: (t := read_task(settings, task_id)).status in ("completed", "failed") and t.attempt > attempt,
                180,
                f"another worker to finish {task_id} while db-worker-1 is frozen",
            )
        finally:
            os.kill(pid, signal.SIGCONT)
        # Thawed, it learns at its next beat or at its finish that the lease is gone, and stops; until it has
        # said so, it is not among the processes chaos may kill.
        wait_until(
            lambda: any(
                line.get("task_id") == task_id and line.get("msg") in (STOPPED, LOST_LEASE)
                for line in _json_lines(deployment.log("db-worker-1"))
            ),
            60,
            "db-worker-1 to stop its task once thawed",
        )
        figures.freezes.append(f"db-worker-1 on {task_id} (attempt {attempt})")
        freeze_done.set()

    # --- kill -9 every few seconds --------------------------------------------------------------------------
    rng = random.Random(int(os.environ.get("REELGATE_SOAK_SEED", "0")) or None)

    def chaos() -> None:
        victims = ["api-1", "api-2", "db-worker-1", "db-worker-2", "remote-1"]
        while not stop_chaos.wait(KILL_EVERY_S):
            # The frozen database worker is left alone until it is thawed (remote-2 is the partition's).
            choices = [v for v in victims if v != "db-worker-1" or freeze_done.is_set()]
            # A replica only while the other serves (a start takes seconds on a loaded machine): one of them
            # is always there, as behind a load balancer.
            down = [r.name for r in replicas if not ready(str(r.base_url))]
            choices = [v for v in choices if not (v.startswith("api-") and (down and down != [v]))]
            victim = rng.choice(choices)
            deployment.kill_and_restart(victim)
            figures.kills.append(victim)

    threads = [threading.Thread(target=chaos, daemon=True), threading.Thread(target=freeze_db_worker, daemon=True)]

    # --- the load ---------------------------------------------------------------------------------------------
    replica_urls = [str(r.base_url) for r in replicas]
    callback_tasks: set[str] = set()

    def submit(index: int) -> str:
        body: dict[str, Any] = {
            "model": DEFAULT_MODEL,
            "prompt": "slow zoom in",
            "image_urls": [IMAGE],
            "duration": 10 if index % 4 == 3 else 5,
        }
        if index % 3 == 2:
            body["callback_url"] = receiver.url("/hook")
        headers = {**auth(key), "Idempotency-Key": f"soak-{index}"}
        deadline = time.monotonic() + 240
        tries = 0
        while time.monotonic() < deadline:
            url = replica_urls[(index + tries) % 2]  # round-robin, the other replica when one is down
            tries += 1
            try:
                answer = httpx.post(f"{url}/v1/videos/generations", json=body, headers=headers, timeout=30)
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            if answer.status_code == 200:
                task_id = str(answer.json()["id"])
                if "callback_url" in body:
                    callback_tasks.add(task_id)
                return task_id
            # 409: the first request under this key died mid-way on a killed replica (its claim is freed after
            # a while); 503: the replica saw no live worker; 5xx: a replica going down.
            assert answer.status_code in (409, 500, 502, 503), answer.text
            time.sleep(1.0)
        raise AssertionError(f"task {index} was never accepted")

    started = time.time()
    for thread in threads:
        thread.start()
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures: list[Future[str]] = []
        # TASKS at least; more while the partitions or the freeze still wait for a task to catch (a bounded
        # number: they need a task in the hands of one particular worker).
        while len(futures) < TASKS or (
            not (partitions_done.is_set() and freeze_done.is_set()) and len(futures) < 3 * TASKS
        ):
            futures.append(pool.submit(submit, len(futures)))
            time.sleep(CREATE_EVERY_S)
        task_ids = [f.result() for f in futures]
    wait_until(partitions_done.is_set, 300, "the three remote partitions")
    wait_until(freeze_done.is_set, 120, "the database worker's freeze")
    stop_chaos.set()
    for thread in threads:
        thread.join(timeout=60)
    for replica in replicas:
        wait_until(lambda url=replica.base_url: ready(str(url)), 60, f"{replica.name} to be up at the end")

    ended = wait_until(
        lambda: (
            (ts := read_tasks(settings, task_ids))
            and all(t.status in ("completed", "failed") for t in ts.values())
            and ts
        ),
        300 + 5 * len(task_ids),
        "every task to end",
    )
    finished_at = max(t.finished_at or 0.0 for t in ended.values())

    # --- every accepted task: completed exactly once, or failed with a reason and its credits released -----
    assert sorted(read_tasks(settings)) == sorted(task_ids), "the database holds a task no create answered"
    assert len(set(task_ids)) == len(task_ids) >= TASKS
    completed = {i: t for i, t in ended.items() if t.status == "completed"}
    failed = {i: t for i, t in ended.items() if t.status == "failed"}
    for task in completed.values():
        assert task.credits_state == "captured", task.id
        assert task.result_key == f"{task.id}-a{task.attempt}.mp4"
    for task in failed.values():
        assert task.credits_state == "released", task.id
        assert task.error_code and task.error_message, task.id
    spent = sum(t.credits_reserved_millicredits for t in completed.values())
    assert balance(settings, key) == initial_credits * 1000 - spent  # one capture each, nothing held

    audit = CliRunner().invoke(cli, ["credits", "audit", "--json"], env=admin_env)
    report = json.loads(audit.output)
    assert audit.exit_code == 0 and report["ok"], report
    assert report["tasks_checked"] == len(task_ids)

    # --- every result link downloads a valid MP4 from the S3 server ------------------------------------------
    for index, task_id in enumerate(task_ids):
        url = replica_urls[index % 2]
        answer = httpx.get(f"{url}/v1/tasks/{task_id}", headers=auth(key), timeout=30).json()
        assert answer["status"] == ended[task_id].status
        if answer["status"] == "failed":
            assert answer["error"]["code"] and answer["error"]["message"]
            continue
        [link] = answer["results"]
        assert link.startswith(f"{endpoint}/{bucket}/{PREFIX}/{task_id}-a"), link  # presigned, not via the API
        video = httpx.get(link, timeout=30)
        assert video.status_code == 200, link
        path = tmp_path / f"{task_id}.mp4"
        path.write_bytes(video.content)
        assert probe_video(path).frames == ended[task_id].duration_s * 24
        path.unlink()

    # --- one callback series per callback task, none for the others -------------------------------------------
    wait_until(
        lambda: all(_series(replica_urls[0], key, t) and _series(replica_urls[0], key, t)[0]["state"] != "pending"
                    for t in callback_tasks),
        120,
        "every callback to be delivered",
    )  # fmt: skip
    received: dict[str, list[Any]] = {}
    for request in receiver.requests("/hook"):
        received.setdefault(json.loads(request.body)["id"], []).append(request)
    assert set(received) == callback_tasks
    for task_id in callback_tasks:
        [series] = _series(replica_urls[1], key, task_id)
        assert series["state"] == "delivered", series
        requests = received[task_id]
        assert {r.webhook_id for r in requests} == {series["webhook_id"]}
        assert {json.loads(r.body)["status"] for r in requests} == {ended[task_id].status}

    # --- the bucket: the inputs, the winners' videos and posters, nothing of a losing attempt --------------------
    # A replica killed between storing a create's inline image and writing its row leaves an input of no task;
    # the sweep deletes it once no create can still be writing that row (here: as if the grace had passed).
    figures.orphan_inputs = _sweep_orphan_inputs(settings)
    expected = {f"{PREFIX}/inputs/{t}/0.jpeg" for t in task_ids}
    for task in completed.values():
        expected.add(f"{PREFIX}/{task.result_key}")
        if task.poster_key:
            expected.add(f"{PREFIX}/{task.poster_key}")
    assert set(bucket_keys(endpoint, bucket)) == expected

    # --- no video and no input on any process's disk ------------------------------------------------------------
    left = [
        str(path.relative_to(tmp_path))
        for member in deployment.members.values()
        if member.home.exists()
        for path in member.home.rglob("*")
        if path.is_file() and (path.suffix.lower() in MEDIA_SUFFIXES or "videos" in path.parts)
    ]
    assert left == []

    # --- the freeze and the partitions did what they were meant to --------------------------------------------
    assert [(p["stored"], p["when"]) for p in figures.partitions] == PARTITIONS
    for partition in figures.partitions:
        task = ended[partition["task_id"]]
        assert task.attempt > partition["attempt"]
        assert f"{task.id}-a{partition['attempt']}" not in (task.result_key or "")
    # Each late hand-in was refused: the worker learned it had lost the lease when it asked to upload
    # (request), when it asked for the video's upload after a late poster (poster answer), or at its finish.
    refused = {json.loads(line)["task_id"] for line in _log_lines(deployment.log("remote-2"), LOST_LEASE)}
    assert {p["task_id"] for p in figures.partitions} <= refused, figures.partitions
    assert "postgresql" not in deployment.log("remote-2") and "s3://" not in deployment.log("remote-2")

    # --- figures --------------------------------------------------------------------------------------------
    latencies = sorted((t.finished_at or 0.0) - t.created_at for t in completed.values())
    elapsed_s = finished_at - started
    with capsys.disabled():
        print(
            f"\nchaos soak: {len(task_ids)} tasks ({len(completed)} completed, {len(failed)} failed: "
            f"{sorted({t.error_code or '' for t in failed.values()})}), "
            f"{len(figures.kills)} kill -9 survived ({_counts(figures.kills)}), "
            f"{len(figures.freezes)} database worker freeze, {len(figures.partitions)} remote partitions, "
            f"{len(callback_tasks)} callback series, {figures.orphan_inputs} inputs of unwritten creates swept"
        )
        print(
            f"  {len(completed) / elapsed_s * 60:.1f} tasks/min over {elapsed_s:.0f} s; create->complete "
            f"p50 {_percentile(latencies, 50):.2f} s  p99 {_percentile(latencies, 99):.2f} s  "
            f"max {latencies[-1] if latencies else float('nan'):.2f} s; attempts "
            f"{_counts([str(t.attempt) for t in ended.values()])}"
        )
    proxy.close()


def _worker_token(admin_env: dict[str, str]) -> str:
    result = CliRunner().invoke(
        cli, ["workers", "tokens", "create", "--name", "soak", "--engines", "motion", "--json"], env=admin_env
    )
    assert result.exit_code == 0, result.output
    return str(json.loads(result.output)["token"])


def _sweep_orphan_inputs(settings: Settings) -> int:
    with TestClient(create_app(settings, workers=0)) as client:
        resources = client.app.state.resources  # type: ignore[attr-defined]
        later = time.time() + ORPHAN_INPUT_GRACE_S
        swept = client.portal.call(lambda: sweep_orphan_inputs(resources, now=later))  # type: ignore[union-attr]
    return swept.deleted


def _live_workers(settings: Settings) -> int:
    from reelgate.queue import registry

    async def run() -> int:
        db = database_for(settings)
        try:
            async with db.read() as session:
                counts = await registry.live_engines(session, now=time.time(), ttl_s=settings.worker_ttl_s)
            return counts.get("motion", 0)
        finally:
            await db.dispose()

    return asyncio.run(run())


def _task_held_by(settings: Settings, pid: int) -> tuple[str, int] | None:
    """A task a database worker process holds now (its lease owner is host:pid:nonce)."""
    for task in read_tasks_processing(settings):
        if task.lease_owner and f":{pid}:" in task.lease_owner and not task.lease_owner.startswith("remote:"):
            return task.id, task.attempt
    return None


def read_tasks_processing(settings: Settings) -> list[Task]:
    async def run() -> list[Task]:
        db = database_for(settings)
        try:
            async with db.read() as session:
                return list(await session.scalars(select(Task).where(Task.status == "processing")))
        finally:
            await db.dispose()

    return asyncio.run(run())


def _series(base_url: str, key: str, task_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{base_url}/v1/tasks/{task_id}/callbacks", headers=auth(key), timeout=30)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


def _log_lines(log: str, message: str) -> list[str]:
    return [line for line in log.splitlines() if re.search(re.escape(message), line)]


def _json_lines(log: str) -> list[dict[str, Any]]:
    lines = []
    for line in log.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                lines.append(json.loads(line))
    return lines


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))]


def _counts(items: list[str]) -> str:
    return ", ".join(f"{name} x{items.count(name)}" for name in sorted(set(items)))
