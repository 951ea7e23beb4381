"""kill -9 of a real `reelgate worker` between Kling's accepting the submit and the first poll's answer: the
next worker resumes polling the recorded upstream task; the upstream sees exactly one submit. SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from reelgate.app import create_app
from reelgate.config import DEFAULT_MODEL
from tests.conftest import Backend, create_key, settings_env, wait_for_live_worker
from tests.e2e.processes import Processes, wait_until
from tests.relay.conftest import create, read_task, relay_settings
from tests.relay.fakes import Upstreams

pytestmark = pytest.mark.slow


def test_kill_9_between_submit_and_first_poll_never_submits_twice(
    tmp_path: Path, backend: Backend, upstreams: Upstreams, processes: Processes
) -> None:
    settings = relay_settings(
        tmp_path, backend, upstreams, lease_s=2.0, poll_interval_s=0.2, relay_request_timeout_s=20.0
    )
    key = create_key(settings)
    env = settings_env(settings)
    env.update(
        {
            "REELGATE_KLING_ACCESS_KEY": settings.kling_access_key,
            "REELGATE_KLING_SECRET_KEY": settings.kling_secret_key,
            "REELGATE_KLING_BASE_URL": settings.kling_base_url,
            "REELGATE_EGRESS_CA_BUNDLE": settings.egress_ca_bundle,
            "REELGATE_RELAY_POLL_INITIAL_S": "0.05",
            "REELGATE_RELAY_POLL_MAX_S": "0.1",
            "REELGATE_RELAY_REQUEST_TIMEOUT_S": "20",
            "REELGATE_MODELS": json.dumps({DEFAULT_MODEL: ["kling"]}),
        }
    )
    upstreams.kling.polls_open.clear()  # the first poll gets no answer until the worker is dead
    first = processes.start("worker-a", ["worker", "--engines", "kling", "--concurrency", "1"], env)
    wait_for_live_worker(settings, "kling")  # an API without the worker answers 503: nobody could serve it
    with TestClient(create_app(settings, workers=0)) as client:
        task_id = create(client, key).json()["id"]
    recorded = wait_until(
        lambda: (t := read_task(settings, task_id)).upstream_task_id and upstreams.kling.accepted == 1 and t,
        60,
        "worker A to submit and record the upstream task id",
    )
    assert recorded.upstream_state == "queued" and recorded.attempt == 1
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    upstreams.kling.polls_open.set()
    processes.start("worker-b", ["worker", "--engines", "kling", "--concurrency", "1"], env)
    done = wait_until(
        lambda: (t := read_task(settings, task_id)).status in ("completed", "failed") and t, 120, "worker B to finish"
    )
    assert done.status == "completed", (done.error_code, done.error_message, processes.log("worker-b"))
    assert done.attempt == 2 and done.upstream_task_id == recorded.upstream_task_id
    assert len(upstreams.kling.submits) == 1 and upstreams.kling.accepted == 1
    assert (settings.home / "videos" / f"{task_id}-a2.mp4").read_bytes() == upstreams.video
    assert done.credits_state == "captured"
