"""The fal relay against a local fake of fal's documented queue API (real HTTPS, Key auth checked)."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import update

from reelgate.app import create_app
from reelgate.db.models import Task
from reelgate.resources import database_for
from tests.conftest import Backend, advertise_worker, auth, create_key
from tests.relay.conftest import FAL_MODEL, create, read_task, relay_settings, wait_task
from tests.relay.fakes import Upstreams


def test_queue_progress_then_completed_is_copied(tmp_path: Path, sqlite_backend: Backend, upstreams: Upstreams) -> None:
    settings = relay_settings(tmp_path, sqlite_backend, upstreams)
    key = create_key(settings)
    with TestClient(create_app(settings, workers=1)) as client:
        created = create(client, key, model=FAL_MODEL, duration=10, aspect_ratio="1:1")
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        done = wait_task(client, key, task_id)
        assert done["status"] == "completed", done
        assert done["task_info"]["engine"] == "fal"
        [link] = done["results"]
        assert upstreams.base_url not in link
        assert client.get(link.removeprefix("http://testserver")).content == upstreams.video
    fal = upstreams.fal
    [body] = fal.submits
    assert set(body) == {"prompt", "start_image_url", "duration"} and body["duration"] == "10"
    raw = base64.b64decode(body["start_image_url"].split(",", 1)[1])
    with Image.open(io.BytesIO(raw)) as image:
        assert image.size[0] == image.size[1]  # framed to the requested 1:1
    assert fal.status_polls >= 4  # IN_QUEUE(2), IN_QUEUE(1), IN_PROGRESS, COMPLETED
    task = read_task(settings, task_id)
    assert task.upstream_provider == "fal" and task.upstream_task_id in fal.requests
    assert task.credits_state == "captured"


def test_cancel_while_in_queue_cancels_upstream(tmp_path: Path, sqlite_backend: Backend, upstreams: Upstreams) -> None:
    upstreams.fal.statuses = [("IN_QUEUE", 5)]
    settings = relay_settings(tmp_path, sqlite_backend, upstreams)
    key = create_key(settings)
    with TestClient(create_app(settings, workers=1)) as client:
        task_id = create(client, key, model=FAL_MODEL).json()["id"]
        deadline = time.monotonic() + 30
        while read_task(settings, task_id).upstream_state != "queued":
            assert time.monotonic() < deadline, "the relay never recorded fal's queue state"
            time.sleep(0.05)
        assert client.get(f"/v1/tasks/{task_id}", headers=auth(key)).json()["task_info"]["can_cancel"] is True
        cancelled = client.post(f"/v1/tasks/{task_id}/cancel", headers=auth(key))
        assert cancelled.status_code == 200, cancelled.text
        request_id = read_task(settings, task_id).upstream_task_id
        while request_id not in upstreams.fal.cancels:
            assert time.monotonic() < deadline, "the relay never called fal's cancel endpoint"
            time.sleep(0.05)
    task = read_task(settings, task_id)
    assert task.status == "failed" and task.error_code == "request_cancelled" and task.credits_state == "released"
    assert upstreams.fal.requests[str(request_id)]["cancelled"] is True


def test_running_task_cannot_be_cancelled(tmp_path: Path, sqlite_backend: Backend, upstreams: Upstreams) -> None:
    upstreams.fal.statuses = [("IN_PROGRESS", 0)]
    settings = relay_settings(tmp_path, sqlite_backend, upstreams)
    key = create_key(settings)
    with TestClient(create_app(settings, workers=1)) as client:
        task_id = create(client, key, model=FAL_MODEL).json()["id"]
        deadline = time.monotonic() + 30
        while read_task(settings, task_id).upstream_state != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        answer = client.get(f"/v1/tasks/{task_id}", headers=auth(key)).json()
        assert answer["task_info"]["can_cancel"] is False
        refused = client.post(f"/v1/tasks/{task_id}/cancel", headers=auth(key))
        assert refused.status_code == 400 and "fal" in refused.json()["error"]["message"]
        upstreams.fal.statuses = [("COMPLETED", 0)]
        assert wait_task(client, key, task_id)["status"] == "completed"


def test_content_policy_result_error(tmp_path: Path, sqlite_backend: Backend, upstreams: Upstreams) -> None:
    upstreams.fal.result_error = (
        422,
        {
            "detail": [
                {"loc": ["body", "prompt"], "msg": "flagged by the content checker", "type": "content_policy_violation"}
            ]
        },
    )
    settings = relay_settings(tmp_path, sqlite_backend, upstreams)
    key = create_key(settings)
    with TestClient(create_app(settings, workers=1)) as client:
        done = wait_task(client, key, create(client, key, model=FAL_MODEL).json()["id"])
    assert done["error"]["code"] == "content_policy_violation"
    assert "flagged by the content checker" in done["error"]["message"]


def test_submit_5xx_is_retried_and_429_waits(tmp_path: Path, sqlite_backend: Backend, upstreams: Upstreams) -> None:
    upstreams.fal.submit_statuses.extend([503, 429])
    settings = relay_settings(tmp_path, sqlite_backend, upstreams)
    key = create_key(settings)
    with TestClient(create_app(settings, workers=1)) as client:
        done = wait_task(client, key, create(client, key, model=FAL_MODEL).json()["id"])
    assert done["status"] == "completed", done
    assert len(upstreams.fal.submits) == 3 and len(upstreams.fal.requests) == 1


def test_wrong_key_is_the_operators_problem(tmp_path: Path, sqlite_backend: Backend, upstreams: Upstreams) -> None:
    settings = relay_settings(tmp_path, sqlite_backend, upstreams, fal_key="wrong")
    key = create_key(settings)
    with TestClient(create_app(settings, workers=1)) as client:
        done = wait_task(client, key, create(client, key, model=FAL_MODEL).json()["id"])
        assert done["error"]["code"] == "service_error"
        assert client.get("/readyz").json()["degraded"]["fal"].startswith("fal refused")


def test_unanswered_earlier_submit_is_never_repeated(
    tmp_path: Path, sqlite_backend: Backend, upstreams: Upstreams
) -> None:
    """A worker died after sending a submit it never got an answer to; fal cannot be asked about it."""
    settings = relay_settings(tmp_path, sqlite_backend, upstreams)
    key = create_key(settings)
    advertise_worker(settings, ("fal",))  # the worker that is about to die
    with TestClient(create_app(settings, workers=0)) as client:
        task_id = create(client, key, model=FAL_MODEL).json()["id"]

    async def mark_submitting() -> None:
        db = database_for(settings)
        try:
            async with db.transaction() as session:
                await session.execute(
                    update(Task)
                    .where(Task.id == task_id)
                    .values(upstream_provider="fal", upstream_state="submitting", upstream_submitted_at=time.time())
                )
        finally:
            await db.dispose()

    asyncio.run(mark_submitting())
    with TestClient(create_app(settings, workers=1)) as client:
        done = wait_task(client, key, task_id)
    assert done["error"]["code"] == "service_unavailable" and "not submitted again" in done["error"]["message"]
    assert upstreams.fal.submits == []
    assert read_task(settings, task_id).credits_state == "released"
