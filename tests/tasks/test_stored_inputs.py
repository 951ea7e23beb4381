"""Images sent inline are stored under the task, the row keeps a reference, the worker reads them from
storage, and the sweep deletes them with the videos; a create that fails leaves nothing stored."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from reelgate.app import create_app
from reelgate.config import DEFAULT_MODEL, Settings
from reelgate.db.models import Task
from reelgate.resources import database_for
from reelgate.tasks.sweep import sweep_expired_results
from tests.conftest import auth, create_key
from tests.e2e.test_generation import wait_done
from tests.images import astronaut, data_uri, shifted


def _stored_files(settings: Settings) -> list[str]:
    root = settings.home / "videos"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _row(settings: Settings, task_id: str) -> Task:
    async def read() -> Task:
        db = database_for(settings)
        try:
            async with db.read() as session:
                task = await session.scalar(select(Task).where(Task.id == task_id))
                assert task is not None
                return task
        finally:
            await db.dispose()

    return asyncio.run(read())


def test_inline_images_are_stored_read_by_the_worker_and_purged(settings: Settings) -> None:
    key = create_key(settings)
    first, last = data_uri(astronaut(), "JPEG"), data_uri(shifted(astronaut(), 6, 0), "PNG")
    body = {"model": DEFAULT_MODEL, "prompt": "morph", "image_urls": [first, last]}
    with TestClient(create_app(settings, workers=1)) as client:
        task_id = client.post("/v1/videos/generations", json=body, headers=auth(key)).json()["id"]
        # The row names stored objects, never the megabytes of base64.
        row = _row(settings, task_id)
        assert row.image_urls == [f"stored:inputs/{task_id}/0.jpeg", f"stored:inputs/{task_id}/1.png"]
        done = wait_done(client, key, task_id)[-1]
        assert done["status"] == "completed", done
        assert _stored_files(settings) == [
            f"inputs/{task_id}/0.jpeg",
            f"inputs/{task_id}/1.png",
            f"{task_id}-a1.jpg",  # the poster
            f"{task_id}-a1.mp4",
        ]
        resources = client.app.state.resources  # type: ignore[attr-defined]
        later = time.time() + settings.result_ttl_s + 1
        assert client.portal.call(lambda: sweep_expired_results(resources, now=later)) == 1  # type: ignore[union-attr]
        assert _stored_files(settings) == []
        purged = _row(settings, task_id)
        assert purged.purged and purged.result_key is None and purged.image_urls == []
        # A second sweep finds nothing left to do.
        assert client.portal.call(lambda: sweep_expired_results(resources, now=later)) == 0  # type: ignore[union-attr]


def test_a_create_that_fails_leaves_no_stored_input(settings: Settings) -> None:
    key = create_key(settings, credits=1)  # a 5 s task costs 5
    body = {"model": DEFAULT_MODEL, "prompt": "zoom", "image_urls": [data_uri(astronaut(), "JPEG")]}
    with TestClient(create_app(settings, workers=0)) as client:
        answer = client.post("/v1/videos/generations", json=body, headers=auth(key))
        assert answer.status_code == 402, answer.text
    assert _stored_files(settings) == []


def test_a_stored_input_that_vanished_fails_the_task_with_a_reason(settings: Settings, tmp_path: Path) -> None:
    key = create_key(settings)
    body = {"model": DEFAULT_MODEL, "prompt": "zoom", "image_urls": [data_uri(astronaut(), "JPEG")]}
    with TestClient(create_app(settings, workers=0)) as client:
        task_id = client.post("/v1/videos/generations", json=body, headers=auth(key)).json()["id"]
    for stored in (settings.home / "videos" / "inputs").rglob("*.jpeg"):
        stored.unlink()
    with TestClient(create_app(settings, workers=1)) as client:
        done = wait_done(client, key, task_id)[-1]
    assert done["status"] == "failed"
    assert done["error"]["code"] == "image_processing_error"
    assert "image_urls[0]" in done["error"]["message"] and "gone" in done["error"]["message"]
