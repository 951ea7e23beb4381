"""The Python SDK against a live `reelgate serve` process: every method, sync and async; every error class
from a real answer; the retry of a real 429 after its Retry-After; `webhooks.verify` on a real callback."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import reelgate_client
from reelgate_client import (
    AsyncClient,
    AuthenticationError,
    Client,
    InsufficientQuotaError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ReelgateError,
    ServiceUnavailableError,
    Task,
    TaskEvent,
    TaskFailedError,
    UpstreamError,
    WaitTimeoutError,
    WebhookVerificationError,
    webhooks,
)

from reelgate.config import DEFAULT_MODEL
from reelgate.media.video import probe_video
from tests.clients.conftest import PNG, LiveServer, start_server
from tests.e2e.processes import Processes
from tests.images import astronaut, encode

pytestmark = pytest.mark.slow
JPEG = encode(astronaut()[:160, :240], "JPEG")


def test_the_sdk_reads_its_settings_from_the_environment(live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELGATE_BASE_URL", live.base_url)
    monkeypatch.setenv("REELGATE_API_KEY", live.key())
    with Client() as client:
        assert client.base_url == live.base_url and client.tasks.list(limit=1).data == []
    monkeypatch.delenv("REELGATE_API_KEY")
    with pytest.raises(ReelgateError, match="REELGATE_API_KEY"):
        Client()


def test_every_method_sync(live: LiveServer, tmp_path: Path) -> None:
    image = tmp_path / "first.jpg"
    image.write_bytes(JPEG)
    with Client(base_url=live.base_url, api_key=live.key()) as client:
        first = client.files.upload(image)
        last = client.files.upload(PNG, file_name="last.png")
        assert first.url.startswith(f"{live.base_url}/v1/files/files/") and first.id.startswith("file_")
        assert (first.name, first.mime_type, first.size) == ("first.jpg", "image/jpeg", len(JPEG))
        assert last.name == "last.png" and last.expires_at is not None
        assert last.expires_at - datetime.now(UTC) > timedelta(hours=71)
        listed = client.files.list(page=1, page_size=10)
        assert listed.total == 2 and {f.id for f in listed.files} == {first.id, last.id}
        assert client.files.quota().used_files == 2

        task = client.videos.create(
            model=DEFAULT_MODEL, prompt="morph", image_urls=[first.url, last.url], aspect_ratio="1:1", duration=5
        )
        assert isinstance(task, Task) and task.status == "pending" and task.can_cancel
        events = list(client.tasks.stream(task.id))
        assert events[-1].is_terminal and events[-1].task is not None and events[-1].task.status == "completed"
        assert [e.progress for e in events] == sorted(e.progress for e in events)
        done = client.tasks.get(task.id)
        assert done == events[-1].task or done.raw == events[-1].task.raw
        assert done.video_url and done.poster_url and done.results == [done.video_url]
        assert client.tasks.wait(task.id, timeout_s=5).id == task.id  # already ended: at once
        video = client.tasks.download(done, tmp_path / "by-task.mp4")
        assert probe_video(video).codec == "h264"
        assert client.tasks.download(task.id, tmp_path / "by-id.mp4").read_bytes() == video.read_bytes()

        seen: list[TaskEvent] = []
        waited = client.videos.create_and_wait(
            model=DEFAULT_MODEL, prompt="zoom", image_urls=[first.url], timeout_s=120, on_progress=seen.append
        )
        assert waited.status == "completed" and seen[-1].is_terminal and seen[-1].task == waited

        page = client.tasks.list(limit=1)
        assert page.has_more and page.next_cursor == waited.id and page.data[0].id == waited.id
        assert [t.id for t in client.tasks.iter_all(page_size=1)] == [waited.id, task.id]

        live.images.release.clear()
        slow = client.videos.create(model=DEFAULT_MODEL, prompt="zoom", image_urls=[live.images.url("slow.png")])
        with pytest.raises(WaitTimeoutError) as timed_out:
            client.tasks.wait(slow.id, timeout_s=0.5)
        assert timed_out.value.task_id == slow.id
        cancelled = client.tasks.cancel(slow.id)
        live.images.release.set()
        assert cancelled.status == "failed" and cancelled.error is not None
        assert cancelled.error.code == "request_cancelled"
        with pytest.raises(TaskFailedError) as failed:
            client.tasks.wait(slow.id)
        assert failed.value.task.id == slow.id and failed.value.code == "request_cancelled"

        client.files.delete(last.id)
        assert client.files.quota().used_files == 1
        with pytest.raises(NotFoundError):
            client.files.delete(last.id)
        with pytest.raises(InvalidRequestError) as deleted:
            client.videos.create(model=DEFAULT_MODEL, prompt="zoom", image_urls=[last.url])
        assert deleted.value.param == "image_urls[0]" and "deleted" in deleted.value.message


def test_every_method_async(live: LiveServer, tmp_path: Path) -> None:
    image = tmp_path / "first.png"
    image.write_bytes(PNG)
    key = live.key()

    async def scenario() -> None:
        async with AsyncClient(base_url=live.base_url, api_key=key) as client:
            upload = await client.files.upload(image)
            from_bytes = await client.files.upload(JPEG)
            assert upload.mime_type == "image/png" and from_bytes.name == "upload.jpg"
            assert (await client.files.list()).total == 2 and (await client.files.quota()).remain_files == 98
            task = await client.videos.create(model=DEFAULT_MODEL, prompt="zoom", image_urls=[upload.url])
            events = [event async for event in client.tasks.stream(task.id)]
            assert events[-1].event == "completed" and events[-1].task is not None
            done = await client.tasks.get(task.id)
            assert done.status == "completed" and done.poster_url
            assert (await client.tasks.wait(task.id)).id == task.id
            video = await client.tasks.download(task.id, tmp_path / "async.mp4")
            assert probe_video(video).codec == "h264"
            seen: list[TaskEvent] = []
            waited = await client.videos.create_and_wait(
                model=DEFAULT_MODEL, prompt="pan left", image_urls=[from_bytes.url], on_progress=seen.append
            )
            assert waited.status == "completed" and seen and seen[-1].task == waited
            page = await client.tasks.list(limit=5)
            assert [t.id for t in page.data] == [waited.id, task.id] and not page.has_more
            assert [t.id async for t in client.tasks.iter_all(page_size=1)] == [waited.id, task.id]
            live.images.release.clear()
            slow = await client.videos.create(model=DEFAULT_MODEL, prompt="z", image_urls=[live.images.url("slow.png")])
            with pytest.raises(WaitTimeoutError):
                await client.tasks.wait(slow.id, timeout_s=0.5)
            cancelled = await client.tasks.cancel(slow.id)
            live.images.release.set()
            assert cancelled.error is not None and cancelled.error.code == "request_cancelled"
            with pytest.raises(TaskFailedError):
                await client.videos.create_and_wait(
                    model=DEFAULT_MODEL, prompt="z", image_urls=["http://127.0.0.1:9/none.png"], timeout_s=60
                )
            await client.files.delete(upload.id)
            with pytest.raises(NotFoundError):
                await client.tasks.get("task-unified-1-missing0")

    asyncio.run(scenario())


def _raises(kind: type[ReelgateError], call: Any) -> ReelgateError:
    with pytest.raises(kind) as caught:
        call()
    error = caught.value
    assert type(error) is kind and isinstance(error, ReelgateError) and error.status is not None
    return error


def test_every_error_class_from_a_real_answer(live: LiveServer) -> None:
    def client(key: str, **options: Any) -> Client:
        return Client(base_url=live.base_url, api_key=key, **options)

    good = client(live.key())

    def create(api: Client, model: str = DEFAULT_MODEL, **fields: Any) -> Task:
        body: dict[str, Any] = {"model": model, "prompt": "zoom", "image_urls": [live.images.url("image.png")]}
        return api.videos.create(**{**body, **fields})

    invalid = _raises(InvalidRequestError, lambda: create(good, duration=7))
    assert (invalid.status, invalid.type, invalid.param) == (400, "invalid_request_error", "duration")
    auth = _raises(AuthenticationError, lambda: client("rg_nobody_nothing").tasks.list())
    assert (auth.status, auth.type) == (401, "authentication_error")
    broke = _raises(InsufficientQuotaError, lambda: create(client(live.key(credits=0))))
    assert broke.status == 402 and broke.fallback_suggestion and "duration 5" not in broke.fallback_suggestion
    denied = _raises(PermissionDeniedError, lambda: create(client(live.key(allowed_models=["motion-b"]))))
    assert (denied.status, denied.param, denied.fallback_suggestion) == (403, "model", "motion-b")
    missing = _raises(NotFoundError, lambda: good.tasks.get("task-unified-1-missing0"))
    assert (missing.status, missing.param, missing.message) == (404, "task_id", "Task not found or expired")
    unknown = _raises(NotFoundError, lambda: create(good, model="no-such-model"))
    assert unknown.param == "model" and unknown.fallback_suggestion == DEFAULT_MODEL
    limited = client(live.key(rpm_limit=1), max_retries=0)
    create(limited)
    rate = _raises(RateLimitError, lambda: create(limited))
    assert rate.status == 429 and rate.retry_after_s is not None and 0 < rate.retry_after_s <= 60
    upstream = _raises(UpstreamError, lambda: create(client(live.key(), max_retries=0), model="relay-only"))
    assert (upstream.status, upstream.type, upstream.param) == (502, "upstream_error", "model")
    # 503 is retried after its Retry-After (30 s here, capped by max_retry_wait_s), then raised.
    answers: list[int] = []
    hooked = httpx.Client(event_hooks={"response": [lambda r: answers.append(r.status_code)]})
    patient = client(live.key(), max_retries=1, max_retry_wait_s=0.2, http_client=hooked)
    unavailable = _raises(ServiceUnavailableError, lambda: create(patient, model="gpu-only"))
    assert unavailable.status == 503 and unavailable.retry_after_s == 30 and answers == [503, 503]
    hooked.close()


def test_an_internal_server_error_from_a_real_answer(tmp_path: Path) -> None:
    processes = Processes(tmp_path)
    try:
        base_url, settings, _ = start_server(tmp_path, processes, workers=0)
        from tests.conftest import create_key

        key = create_key(settings)
        # A broken database: the files table is gone under the running server.
        with sqlite3.connect(tmp_path / "reelgate.db") as connection:
            connection.execute("DROP TABLE files")
        with Client(base_url=base_url, api_key=key) as client:
            error = _raises(InternalServerError, client.files.quota)
            assert (error.status, error.type, error.message) == (500, "internal_server_error", "Internal server error")
            assert client.tasks.list().data == []  # the rest of the server still answers
    finally:
        processes.stop_all()


def test_a_real_429_is_retried_after_its_retry_after(live: LiveServer) -> None:
    # One unfinished task at a time: the second create is refused (429, Retry-After: 5) while the first is
    # still downloading its image, and the SDK's retry, 5 s later, gets through.
    key = live.key(max_concurrent=1)
    seen: list[tuple[float, int, str | None, str | None]] = []

    def record(response: httpx.Response) -> None:
        if response.request.method == "POST":
            key_header = response.request.headers.get("Idempotency-Key")
            seen.append((time.monotonic(), response.status_code, response.headers.get("Retry-After"), key_header))

    live.images.hold_s = 2.0
    live.images.release.clear()
    with httpx.Client(event_hooks={"response": [record]}) as http:
        client = Client(base_url=live.base_url, api_key=key, http_client=http)
        client.videos.create(model=DEFAULT_MODEL, prompt="zoom", image_urls=[live.images.url("slow.png")])
        second = client.videos.create(model=DEFAULT_MODEL, prompt="zoom", image_urls=[live.images.url("image.png")])
    live.images.hold_s = 3.0
    assert second.status == "pending"
    (_, first_status, _, first_key), *retries = seen
    assert first_status == 200 and len(retries) >= 2
    # Refused while the first task runs (a slow machine may refuse more than once), then let through.
    assert [status for _, status, _, _ in retries[:-1]] == [429] * (len(retries) - 1) and retries[-1][1] == 200
    assert all(retry_after == "5" for _, _, retry_after, _ in retries[:-1])
    # One Idempotency-Key per create, the same on each of its retries.
    assert len({key_header for *_, key_header in retries}) == 1 and retries[0][3] != first_key
    # Each retry waited as long as the server said.
    assert all(later[0] - earlier[0] >= 5 for earlier, later in itertools.pairwise(retries))


def test_verify_a_real_callback(live: LiveServer) -> None:
    key = live.signed_key()
    with Client(base_url=live.base_url, api_key=key.plaintext) as client:
        task = client.videos.create(
            model=DEFAULT_MODEL,
            prompt="zoom",
            image_urls=[live.images.url("image.png")],
            callback_url=live.receiver.url("/sdk-hook"),
        )
        done = client.tasks.wait(task.id)
    (received,) = live.receiver.wait_for(1, 30, path="/sdk-hook")
    verified = webhooks.verify(received.body, received.headers, key.webhook_secret)
    assert verified.id == task.id and verified.status == "completed" and verified.video_url == done.video_url
    assert webhooks.verify(received.body.decode(), received.headers, key.webhook_secret).id == task.id
    altered = received.body.replace(b'"completed"', b'"failed"')
    with pytest.raises(WebhookVerificationError, match="signature"):
        webhooks.verify(altered, received.headers, key.webhook_secret)
    with pytest.raises(WebhookVerificationError, match="signature"):
        webhooks.verify(received.body, received.headers, live.signed_key().webhook_secret)
    with pytest.raises(WebhookVerificationError, match="stale"):
        webhooks.verify(received.body, received.headers, key.webhook_secret, now=time.time() + 3600)
    headers = {k: v for k, v in received.headers.items() if k != "webhook-signature"}
    with pytest.raises(WebhookVerificationError, match="webhook-signature"):
        webhooks.verify(received.body, headers, key.webhook_secret)
    assert reelgate_client.__version__ == "0.1.0"
