"""A remote worker's hand-in on S3 with presigned uploads, where the API cannot refuse the upload itself (the
PUT goes straight to the bucket): what a worker uploads after losing its lease is deleted at its next call,
which is refused; and a finish repeated after its answer was lost never deletes the task's result.

Found by the chaos soak (tests/soak): a worker frozen while holding its video's upload link uploaded after
another worker had won, and its finish was refused with a 400 (the winner had deleted its poster) that left
its video in the bucket; a poster uploaded late was left there the same way."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from reelgate.app import create_app
from reelgate.config import Settings
from tests.conftest import auth, create_key, make_settings, migrate_db, sqlite_backend_at
from tests.queue.test_worker_routes import create_task, new_token, register
from tests.s3server import REGION, bucket_keys

PREFIX = "media"


def only_attempt(task_id: str, attempt: int) -> list[str]:
    """What the bucket holds of a task whose `attempt` won: its input, and that attempt's poster and video."""
    return [
        f"{PREFIX}/inputs/{task_id}/0.jpeg",
        f"{PREFIX}/{task_id}-a{attempt}.jpg",
        f"{PREFIX}/{task_id}-a{attempt}.mp4",
    ]


@pytest.fixture
def on_s3(tmp_path: Path, s3_endpoint: str, s3_bucket: str) -> tuple[Settings, TestClient]:
    settings = make_settings(
        tmp_path / "home",
        sqlite_backend_at(tmp_path),
        storage_url=f"s3://{s3_bucket}/{PREFIX}",
        s3_endpoint_url=s3_endpoint,
        s3_region=REGION,
        lease_s=2.0,
    )
    migrate_db(settings)
    return settings, TestClient(create_app(settings, workers=0))


class RemoteWorker:
    """The worker routes as a remote worker calls them (tests/queue/test_worker_routes.py has the basics)."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.client, self.token = client, token
        self.worker_id = register(client, token)

    def claim(self) -> dict[str, Any]:
        body = {"worker_id": self.worker_id, "engines": ["motion"], "wait_s": 5}
        (claimed,) = self.client.post("/worker/v1/claims", json=body, headers=auth(self.token)).json()["data"]
        lease: dict[str, Any] = claimed["lease"]
        return {"attempt": lease["attempt"], "lease_owner": lease["lease_owner"]}

    def call(self, task_id: str, action: str, fence: dict[str, Any], **body: Any) -> Any:
        path = f"/worker/v1/tasks/{task_id}/{action}"
        return self.client.post(path, json={**fence, **body}, headers=auth(self.token))

    def upload(self, task_id: str, fence: dict[str, Any], stored: str) -> dict[str, Any]:
        """Where to upload (a presigned PUT of the bucket): asked while the lease holds."""
        answer = self.call(task_id, "upload", fence, object=stored)
        assert answer.status_code == 200, answer.text
        target: dict[str, Any] = answer.json()
        assert target["needs_token"] is False  # straight to the bucket
        return target


def put(target: dict[str, Any], content: bytes) -> None:
    answer = httpx.put(target["url"], content=content, headers=target["headers"], timeout=30)
    assert answer.status_code == 200, answer.text


def hand_in(worker: RemoteWorker, task_id: str, fence: dict[str, Any]) -> httpx.Response:
    put(worker.upload(task_id, fence, "poster"), b"poster")
    put(worker.upload(task_id, fence, "video"), b"video")
    return worker.call(task_id, "complete", fence, info={"width": 64, "height": 64}, poster=True)


def lose_the_lease(client: TestClient, key: str, task_id: str) -> None:
    """No heartbeat: the lease runs out and the API's recovery puts the task back to pending."""
    deadline = time.monotonic() + 30
    while client.get(f"/v1/tasks/{task_id}", headers=auth(key)).json()["status"] != "pending":
        assert time.monotonic() < deadline, "the lease never ran out"
        time.sleep(0.1)


def test_a_late_video_and_its_refused_finish_leave_nothing(
    on_s3: tuple[Settings, TestClient], s3_endpoint: str, s3_bucket: str
) -> None:
    settings, client = on_s3
    with client:
        key = create_key(settings)
        token = new_token(settings)["token"]
        a, b = RemoteWorker(client, token), RemoteWorker(client, token)
        task_id = create_task(client, key)
        fence_a = a.claim()
        put(a.upload(task_id, fence_a, "poster"), b"poster of attempt 1")
        video_link = a.upload(task_id, fence_a, "video")
        lose_the_lease(client, key, task_id)  # A is frozen here, holding its video's upload link
        fence_b = b.claim()
        assert hand_in(b, task_id, fence_b).json() == {"won": True}  # and deletes attempt 1's poster
        put(video_link, b"video of attempt 1, uploaded late")  # the bucket takes it: a presigned PUT
        late = a.call(task_id, "complete", fence_a, info={}, poster=True)
        assert late.status_code == 409 and late.json()["error"]["param"] == "lease_owner", late.text
        assert bucket_keys(s3_endpoint, s3_bucket) == only_attempt(task_id, 2)


def test_a_late_poster_is_deleted_when_the_next_upload_is_refused(
    on_s3: tuple[Settings, TestClient], s3_endpoint: str, s3_bucket: str
) -> None:
    settings, client = on_s3
    with client:
        key = create_key(settings)
        token = new_token(settings)["token"]
        a, b = RemoteWorker(client, token), RemoteWorker(client, token)
        task_id = create_task(client, key)
        fence_a = a.claim()
        poster_link = a.upload(task_id, fence_a, "poster")
        lose_the_lease(client, key, task_id)  # A is frozen here, holding its poster's upload link
        fence_b = b.claim()
        assert hand_in(b, task_id, fence_b).json() == {"won": True}
        put(poster_link, b"poster of attempt 1, uploaded late")
        assert f"{PREFIX}/{task_id}-a1.jpg" in bucket_keys(s3_endpoint, s3_bucket)
        refused = a.call(task_id, "upload", fence_a, object="video")
        assert refused.status_code == 409, refused.text
        assert bucket_keys(s3_endpoint, s3_bucket) == only_attempt(task_id, 2)


def test_a_finish_repeated_after_its_answer_was_lost_keeps_the_result(
    on_s3: tuple[Settings, TestClient], s3_endpoint: str, s3_bucket: str
) -> None:
    """A replica killed between the finish's commit and its answer: the worker calls again."""
    settings, client = on_s3
    with client:
        key = create_key(settings)
        worker = RemoteWorker(client, new_token(settings)["token"])
        task_id = create_task(client, key)
        fence = worker.claim()
        assert hand_in(worker, task_id, fence).json() == {"won": True}
        again = worker.call(task_id, "complete", fence, info={"width": 64, "height": 64}, poster=True)
        assert again.status_code == 200 and again.json() == {"won": True}, again.text
        assert bucket_keys(s3_endpoint, s3_bucket) == only_attempt(task_id, 1)
        task = client.get(f"/v1/tasks/{task_id}", headers=auth(key)).json()
        assert task["status"] == "completed"
        assert httpx.get(task["results"][0], timeout=30).content == b"video"


def test_a_call_naming_another_worker_s_live_attempt_deletes_nothing(
    on_s3: tuple[Settings, TestClient], s3_endpoint: str, s3_bucket: str
) -> None:
    """Refused calls delete only what is over: another token's worker naming a lease it does not hold (the
    task and attempt of someone else's running job) cannot make the API delete that job's upload."""
    settings, client = on_s3
    with client:
        key = create_key(settings)
        holder = RemoteWorker(client, new_token(settings)["token"])
        other = RemoteWorker(client, new_token(settings)["token"])
        task_id = create_task(client, key)
        fence = holder.claim()
        put(holder.upload(task_id, fence, "poster"), b"poster")
        guessed = {"attempt": fence["attempt"], "lease_owner": other.worker_id}
        refused = other.call(task_id, "upload", guessed, object="video")
        assert refused.status_code == 409, refused.text
        assert f"{PREFIX}/{task_id}-a1.jpg" in bucket_keys(s3_endpoint, s3_bucket)
        put(holder.upload(task_id, fence, "video"), b"video")
        done = holder.call(task_id, "complete", fence, info={}, poster=True)
        assert done.json() == {"won": True}, done.text
