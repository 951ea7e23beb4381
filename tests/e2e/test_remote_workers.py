"""Remote workers as real processes: a `reelgate worker --server URL --token T` with no database URL and no
database file completes tasks; a killed one's task is finished by another after its lease; a frozen one that
wakes after losing its lease leaves nothing behind; a revoked token stops its worker."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from reelgate.cli import app as cli
from reelgate.config import DEFAULT_MODEL
from reelgate.media.video import probe_video
from tests.conftest import (
    LONG_RUN_SHORT_SIDE_PX,
    Backend,
    auth,
    create_key,
    make_settings,
    migrate_db,
    settings_env,
    wait_for_live_worker,
)
from tests.e2e.processes import Processes, free_port, ready, wait_until
from tests.e2e.test_crashes import balance, read_task
from tests.images import astronaut, data_uri
from tests.soak.proxy import Trap, TrapProxy

pytestmark = pytest.mark.slow


class Deployment:
    """One API process on the database, and remote workers that know only its URL and a token."""

    def __init__(
        self,
        tmp_path: Path,
        backend: Backend,
        processes: Processes,
        *,
        api_env: dict[str, str] | None = None,
        **overrides: Any,
    ) -> None:
        self.tmp_path = tmp_path
        self.processes = processes
        self.settings = make_settings(tmp_path / "home", backend, poll_interval_s=0.2, **overrides)
        migrate_db(self.settings)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {**settings_env(self.settings), "REELGATE_PUBLIC_URL": self.base_url}
        processes.start("api", ["serve", "--port", str(self.port), "--workers", "0"], {**self.env, **(api_env or {})})
        wait_until(lambda: ready(self.base_url), 30, "the API to start")

    def token(self, engines: str | None = None) -> dict[str, Any]:
        args = ["workers", "tokens", "create", "--name", "gpu-box", "--json"]
        if engines is not None:
            args += ["--engines", engines]
        result = CliRunner().invoke(cli, args, env=settings_env(self.settings))
        assert result.exit_code == 0, result.output
        created: dict[str, Any] = json.loads(result.output)
        return created

    def remote_worker(self, name: str, token: str, *, concurrency: int = 1, server: str | None = None) -> Any:
        """A worker whose environment names no database, and whose home has none; `server`: the URL it is given
        for the API (by default the API's own)."""
        home = self.tmp_path / f"{name}-home"
        env = {k: v for k, v in self.env.items() if k not in ("REELGATE_DATABASE_URL", "REELGATE_DATABASE_SCHEMA")}
        env["REELGATE_HOME"] = str(home)
        args = ["worker", "--server", server or self.base_url, "--token", token, "--concurrency", str(concurrency)]
        return self.processes.start(name, args, env)

    def create(self, key: str, **fields: Any) -> str:
        body = {"model": DEFAULT_MODEL, "prompt": "slow zoom in", "image_urls": [data_uri(astronaut(), "JPEG")]}
        answer = httpx.post(
            f"{self.base_url}/v1/videos/generations", json={**body, **fields}, headers=auth(key), timeout=30
        )
        assert answer.status_code == 200, answer.text
        task_id: str = answer.json()["id"]
        return task_id

    def objects(self) -> list[str]:
        root = self.settings.home / "videos"
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


@pytest.fixture
def deployment(tmp_path: Path, backend: Backend, processes: Processes) -> Deployment:
    return Deployment(tmp_path, backend, processes)


def test_a_remote_worker_without_database_access_completes_tasks(deployment: Deployment, tmp_path: Path) -> None:
    key = create_key(deployment.settings, credits=100)
    deployment.remote_worker("remote", deployment.token()["token"], concurrency=2)
    wait_for_live_worker(deployment.settings)
    first, second = deployment.create(key), deployment.create(key, duration=10)
    for task_id in (first, second):
        wait_until(lambda task_id=task_id: read_task(deployment.settings, task_id).status == "completed", 120, "done")
        answer = httpx.get(f"{deployment.base_url}/v1/tasks/{task_id}", headers=auth(key), timeout=10).json()
        video = httpx.get(answer["results"][0], timeout=30)
        assert video.status_code == 200
        (tmp_path / f"{task_id}.mp4").write_bytes(video.content)
        assert probe_video(tmp_path / f"{task_id}.mp4").frames == answer["task_info"]["video_duration"] * 24
        assert httpx.get(answer["task_info"]["poster_url"], timeout=10).headers["content-type"] == "image/jpeg"
    assert balance(deployment.settings, key) == 100_000 - 15_000
    worker_home = tmp_path / "remote-home"
    assert not (worker_home / "reelgate.db").exists()  # it never opened a database
    assert not (worker_home / "videos").exists()  # nor stored anything of its own
    assert "postgresql" not in deployment.processes.log("remote") and "sqlite" not in deployment.processes.log("remote")


def test_a_hand_in_slower_than_a_lease_keeps_the_lease(tmp_path: Path, backend: Backend, processes: Processes) -> None:
    """The worker beats on while it makes the poster, uploads and finishes: a hand-in that takes three leases (the
    answer to its video's upload call held by a forwarder, as on a slow link) completes as the first attempt.
    Beats had stopped with the engine, and such a task lost its lease and was rendered again."""
    lease_s = 2.0
    deployment = Deployment(tmp_path, backend, processes, lease_s=lease_s)
    key = create_key(deployment.settings, credits=100)
    proxy = TrapProxy(deployment.port)
    held: list[tuple[str, int]] = []

    def slow_link(task_id: str, attempt: int) -> None:
        held.append((task_id, attempt))
        time.sleep(3 * lease_s)

    proxy.arm(Trap("video", "answer", slow_link))
    try:
        deployment.remote_worker("remote", deployment.token()["token"], server=proxy.url)
        wait_for_live_worker(deployment.settings)
        task_id = deployment.create(key)
        done = wait_until(
            lambda: (t := read_task(deployment.settings, task_id)).status == "completed" and t, 120, "the task to end"
        )
    finally:
        proxy.close()
    assert held == [(task_id, 1)]
    assert (done.attempt, done.result_key) == (1, f"{task_id}-a1.mp4")
    assert "lease was lost" not in deployment.processes.log("remote")
    assert balance(deployment.settings, key) == 95_000


def test_a_killed_remote_worker_s_task_is_finished_by_another(
    tmp_path: Path, backend: Backend, processes: Processes
) -> None:
    deployment = Deployment(tmp_path, backend, processes, lease_s=2.0, motion_short_side_px=LONG_RUN_SHORT_SIDE_PX)
    key = create_key(deployment.settings, credits=100)
    token = deployment.token()["token"]
    first = deployment.remote_worker("remote-a", token)
    wait_for_live_worker(deployment.settings)
    task_id = deployment.create(key, duration=10)
    wait_until(lambda: read_task(deployment.settings, task_id).progress > 0, 60, "worker A to make progress")
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    deployment.remote_worker("remote-b", token)
    done = wait_until(
        lambda: (t := read_task(deployment.settings, task_id)).status == "completed" and t, 120, "worker B to finish"
    )
    assert done.attempt == 2
    assert balance(deployment.settings, key) == 90_000  # captured once
    assert deployment.objects() == [f"inputs/{task_id}/0.jpeg", f"{task_id}-a2.jpg", f"{task_id}-a2.mp4"]


def test_a_frozen_remote_worker_that_wakes_late_changes_nothing(
    tmp_path: Path, backend: Backend, processes: Processes
) -> None:
    deployment = Deployment(tmp_path, backend, processes, lease_s=2.0, motion_short_side_px=LONG_RUN_SHORT_SIDE_PX)
    key = create_key(deployment.settings, credits=100)
    token = deployment.token()["token"]
    frozen = deployment.remote_worker("remote-a", token)
    wait_for_live_worker(deployment.settings)
    task_id = deployment.create(key, duration=10)
    wait_until(lambda: read_task(deployment.settings, task_id).progress > 0, 60, "worker A to make progress")
    os.kill(frozen.pid, signal.SIGSTOP)  # a partition: it holds its lease and says nothing
    deployment.remote_worker("remote-b", token)
    done = wait_until(
        lambda: (t := read_task(deployment.settings, task_id)).status == "completed" and t, 120, "worker B to finish"
    )
    assert done.attempt == 2
    os.kill(frozen.pid, signal.SIGCONT)
    # Its next beat learns the lease is gone; whatever it tries next (an upload, a finish) is refused.
    wait_until(lambda: "task cancelled or lease lost" in deployment.processes.log("remote-a"), 60, "worker A to stop")
    after = read_task(deployment.settings, task_id)
    assert (after.status, after.attempt, after.result_key) == ("completed", 2, f"{task_id}-a2.mp4")
    assert balance(deployment.settings, key) == 90_000
    assert deployment.objects() == [f"inputs/{task_id}/0.jpeg", f"{task_id}-a2.jpg", f"{task_id}-a2.mp4"]


def test_a_revoked_token_stops_its_worker_and_its_task_is_rerun(
    tmp_path: Path, backend: Backend, processes: Processes
) -> None:
    deployment = Deployment(tmp_path, backend, processes, motion_short_side_px=LONG_RUN_SHORT_SIDE_PX)
    key = create_key(deployment.settings, credits=100)
    revoked, kept = deployment.token(), deployment.token()
    worker = deployment.remote_worker("revoked", revoked["token"])
    wait_for_live_worker(deployment.settings)
    task_id = deployment.create(key, duration=10)
    wait_until(lambda: read_task(deployment.settings, task_id).progress > 0, 60, "the worker to make progress")
    result = CliRunner().invoke(
        cli, ["workers", "tokens", "revoke", revoked["id"]], env=settings_env(deployment.settings)
    )
    assert result.exit_code == 0, result.output
    assert read_task(deployment.settings, task_id).status == "pending"  # back at once, not after the lease
    assert worker.wait(timeout=60) == 1  # it stopped, saying why
    assert "Invalid or revoked worker token" in " ".join(deployment.processes.log("revoked").split())
    deployment.remote_worker("kept", kept["token"])
    done = wait_until(
        lambda: (t := read_task(deployment.settings, task_id)).status == "completed" and t, 120, "the other worker"
    )
    assert done.attempt == 2 and balance(deployment.settings, key) == 90_000


def test_a_wan_token_s_worker_never_gets_a_motion_task(deployment: Deployment) -> None:
    key = create_key(deployment.settings, credits=100)
    refused = deployment.remote_worker("wan-only", deployment.token(engines="wan")["token"])
    # It asked to run motion (every engine of REELGATE_MODELS here), which its token does not allow.
    assert refused.wait(timeout=60) == 1
    said = " ".join(deployment.processes.log("wan-only").split())  # the console wraps long lines
    assert "This worker token may not run the engine(s) motion" in said
    assert (
        httpx.post(
            f"{deployment.base_url}/v1/videos/generations",
            json={"model": DEFAULT_MODEL, "prompt": "x", "image_urls": [data_uri(astronaut(), "JPEG")]},
            headers=auth(key),
            timeout=30,
        ).status_code
        == 503
    )


def test_with_a_bucket_the_remote_worker_moves_media_without_the_api(tmp_path: Path, processes: Processes) -> None:
    """On S3 with presigned links, a remote worker reads its inputs from presigned GETs and uploads its video
    and poster with presigned PUTs: it holds no bucket credentials, and no video byte passes through the API."""
    from tests.conftest import sqlite_backend_at
    from tests.s3server import aws_environment, bucket_keys, new_bucket, s3_server

    with s3_server() as endpoint:
        aws = {k: v for k, v in aws_environment().items() if v is not None}
        saved = {k: os.environ.get(k) for k in aws}
        os.environ.update(aws)  # for the bucket the test creates, and for the API process it starts
        try:
            bucket = new_bucket(endpoint)
            storage = {"storage_url": f"s3://{bucket}/media", "s3_endpoint_url": endpoint}
            api_env = {**aws, "REELGATE_STORAGE_URL": storage["storage_url"], "REELGATE_S3_ENDPOINT_URL": endpoint}
            deployment = Deployment(tmp_path, sqlite_backend_at(tmp_path), processes, api_env=api_env, **storage)
            key = create_key(deployment.settings, credits=100)
            token = deployment.token()["token"]
            # The worker's environment has neither the storage settings nor any AWS credential.
            deployment.env = {k: v for k, v in deployment.env.items() if not k.startswith("AWS_")}
            assert not [k for k in deployment.env if k.startswith(("REELGATE_S3", "REELGATE_STORAGE"))]
            deployment.remote_worker("remote", token)
            wait_for_live_worker(deployment.settings)
            task_id = deployment.create(key)
            wait_until(lambda: read_task(deployment.settings, task_id).status == "completed", 120, "the task")
            assert bucket_keys(endpoint, bucket) == [
                f"media/inputs/{task_id}/0.jpeg",
                f"media/{task_id}-a1.jpg",
                f"media/{task_id}-a1.mp4",
            ]
            answer = httpx.get(f"{deployment.base_url}/v1/tasks/{task_id}", headers=auth(key), timeout=10).json()
            assert answer["results"][0].startswith(f"{endpoint}/{bucket}/media/{task_id}-a1.mp4?")
            (tmp_path / "v.mp4").write_bytes(httpx.get(answer["results"][0], timeout=30).content)
            assert probe_video(tmp_path / "v.mp4").frames == 120
            metrics = httpx.get(f"{deployment.base_url}/metrics", timeout=10).text
            assert 'route="/worker/v1/tasks/{task_id}/upload"' in metrics  # asked where to upload...
            assert "upload/{stored}" not in metrics  # ...and never uploaded through the API
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
