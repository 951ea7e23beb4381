"""Expired results: the sweep deletes the file and forgets it; the task and its link answer 404."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from fastapi.testclient import TestClient

from reelgate.app import create_app
from reelgate.config import DEFAULT_MODEL, Settings
from reelgate.tasks.sweep import sweep_expired_results
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
