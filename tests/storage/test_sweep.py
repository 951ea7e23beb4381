"""Expired results: the sweep deletes the file and forgets it; the task and its link answer 404."""

from __future__ import annotations

import io
import time
from urllib.parse import urlsplit

from fastapi.testclient import TestClient

from reelgate.app import create_app
from reelgate.config import DEFAULT_MODEL, Settings
from reelgate.storage.keys import input_key, input_prefix
from reelgate.tasks.service import new_task_id
from reelgate.tasks.sweep import ORPHAN_INPUT_GRACE_S, InputsSwept, sweep_expired_results, sweep_orphan_inputs
from tests.conftest import auth, create_key
from tests.e2e.test_generation import wait_done
from tests.images import astronaut, data_uri


def test_sweep_deletes_expired_videos(settings: Settings) -> None:
    key = create_key(settings)
    body = {"model": DEFAULT_MODEL, "prompt": "zoom", "image_urls": [data_uri(astronaut())]}
    with TestClient(create_app(settings, workers=1)) as client:
        task_id = client.post("/v1/videos/generations", json=body, headers=auth(key)).json()["id"]
        url = wait_done(client, key, task_id)[-1]["results"][0]
        video = settings.home / "videos" / urlsplit(url).path.rsplit("/", 1)[1]
        assert video.is_file()
        resources = client.app.state.resources  # type: ignore[attr-defined]
        assert client.portal.call(sweep_expired_results, resources) == 0  # type: ignore[union-attr]
        assert video.is_file()
        later = time.time() + settings.result_ttl_s + 1
        assert client.portal.call(lambda: sweep_expired_results(resources, now=later)) == 1  # type: ignore[union-attr]
        assert not video.exists()
        link = client.get(f"{urlsplit(url).path}?{urlsplit(url).query}")
        assert link.status_code == 404


def test_inputs_of_creates_that_never_wrote_their_task_are_deleted_after_the_grace(settings: Settings) -> None:
    """A create stores inline images before its row; a process killed in between leaves inputs of no task."""
    key = create_key(settings)
    body = {"model": DEFAULT_MODEL, "prompt": "zoom", "image_urls": [data_uri(astronaut())]}
    now = time.time()
    # What a create killed after storing its inputs leaves: task ids drawn two hours and ten minutes ago.
    dead_long_ago = input_key(new_task_id(now - 2 * 3600), 0, "jpeg")
    dead_lately = input_key(new_task_id(now - 600), 1, "png")
    with TestClient(create_app(settings, workers=0)) as client:
        resources = client.app.state.resources  # type: ignore[attr-defined]
        storage = resources.storage
        task_id = client.post("/v1/videos/generations", json=body, headers=auth(key)).json()["id"]
        [own_input] = storage.list_keys(input_prefix(task_id))
        for orphan in (dead_long_ago, dead_lately):
            storage.put_stream(orphan, io.BytesIO(b"jpeg"))
        storage.put_stream("files/file-abc.jpeg", io.BytesIO(b"an upload"))  # owned by no task, never an orphan

        def sweep(at: float, after: str = "") -> InputsSwept:
            return client.portal.call(lambda: sweep_orphan_inputs(resources, now=at, after=after))  # type: ignore[union-attr,no-any-return]

        first = sweep(now)
        assert first.deleted == 1
        assert set(storage.list_keys("")) == {own_input, dead_lately, "files/file-abc.jpeg"}
        # The next pass starts where this one stopped, and past the grace the recent orphan goes too; the
        # inputs of the task that was written stay, however old.
        second = sweep(now + ORPHAN_INPUT_GRACE_S, after=first.next_after)
        assert second.deleted == 1 and second.next_after > first.next_after
        assert set(storage.list_keys("")) == {own_input, "files/file-abc.jpeg"}
        assert sweep(now + 2 * ORPHAN_INPUT_GRACE_S).deleted == 0
        assert client.get(f"/v1/tasks/{task_id}", headers=auth(key)).status_code == 200
