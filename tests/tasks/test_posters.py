"""Posters: a completed task has a small JPEG of a representative frame behind a signed link in
`task_info.poster_url`; `results` stays the seed's list of video links; losing attempts' posters are
discarded like their videos. And the 402 suggests a shorter video only to a request that asked for more."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from reelgate.app import create_app
from reelgate.config import DEFAULT_MODEL, Settings
from reelgate.db.models import Task
from reelgate.media.video import read_frames
from reelgate.queue.terminal import discard_losing_videos
from reelgate.storage.links import LinkSigner
from reelgate.storage.memory import MemoryStorage
from tests.conftest import auth, create_key
from tests.e2e.test_generation import psnr, wait_done
from tests.images import astronaut, data_uri


def test_a_completed_task_has_a_jpeg_poster_of_its_middle_frame(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"motion_short_side_px": 360})
    key = create_key(settings)
    body = {"model": DEFAULT_MODEL, "prompt": "slow zoom in", "image_urls": [data_uri(astronaut())]}
    with TestClient(create_app(settings, workers=1)) as client:
        created = client.post("/v1/videos/generations", json=body, headers=auth(key)).json()
        assert "poster_url" not in created["task_info"]  # nothing to show yet
        done = wait_done(client, key, created["id"])[-1]
        assert done["status"] == "completed"
        assert len(done["results"]) == 1 and urlsplit(done["results"][0]).path.endswith(".mp4")
        poster_url = done["task_info"]["poster_url"]
        assert urlsplit(poster_url).path.endswith(".jpg") and "signature=" in poster_url
        poster = client.get(f"{urlsplit(poster_url).path}?{urlsplit(poster_url).query}")
        video = client.get(f"{urlsplit(done['results'][0]).path}?{urlsplit(done['results'][0]).query}")
        tampered = client.get(
            f"{urlsplit(poster_url).path}?{urlsplit(poster_url).query}".replace("signature=", "signature=0")
        )
    assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"
    assert poster.content.startswith(b"\xff\xd8\xff") and len(poster.content) < len(video.content)
    assert tampered.status_code == 404
    image = np.asarray(Image.open(io.BytesIO(poster.content)).convert("RGB"))
    (tmp_path / "v.mp4").write_bytes(video.content)
    frames = list(read_frames(tmp_path / "v.mp4"))
    middle = frames[len(frames) // 2]
    assert image.shape == middle.shape  # 640x360: already small, so not scaled
    assert psnr(image, middle) > 30 and psnr(image, middle) > psnr(image, frames[0])


def test_a_big_video_gets_a_poster_at_most_640_px(settings: Settings) -> None:
    settings = settings.model_copy(update={"motion_short_side_px": 720})
    key = create_key(settings)
    body = {"model": DEFAULT_MODEL, "prompt": "pan left", "image_urls": [data_uri(astronaut())], "aspect_ratio": "9:16"}
    with TestClient(create_app(settings, workers=1)) as client:
        done = wait_done(client, key, client.post("/v1/videos/generations", json=body, headers=auth(key)).json()["id"])[
            -1
        ]
        url = urlsplit(done["task_info"]["poster_url"])
        poster = client.get(f"{url.path}?{url.query}")
    assert Image.open(io.BytesIO(poster.content)).size == (360, 640)  # 720x1280 scaled to fit 640


def test_losing_attempts_posters_are_discarded_with_their_videos() -> None:
    storage = MemoryStorage(LinkSigner(b"k" * 32, "http://testserver"))
    task_id = "task-unified-1-abcdefgh"
    for name in ("a1.mp4", "a1.jpg", "a2.mp4", "a2.jpg", "a3.mp4"):
        storage.put_stream(f"{task_id}-{name}", io.BytesIO(b"x"))
    won = Task(id=task_id, attempt=3, result_key=f"{task_id}-a2.mp4", poster_key=f"{task_id}-a2.jpg")
    asyncio.run(discard_losing_videos(storage, won))
    assert storage.keys() == [f"{task_id}-a2.jpg", f"{task_id}-a2.mp4"]


def test_the_402_suggests_duration_5_only_to_a_longer_request(settings: Settings) -> None:
    key = create_key(settings, credits=3)  # a 5 s task costs 5
    body = {"model": DEFAULT_MODEL, "prompt": "zoom", "image_urls": [data_uri(astronaut()[:64, :64], "JPEG")]}
    with TestClient(create_app(settings)) as client:
        long = client.post("/v1/videos/generations", json={**body, "duration": 10}, headers=auth(key)).json()["error"]
        short = client.post("/v1/videos/generations", json={**body, "duration": 5}, headers=auth(key)).json()["error"]
    assert long["code"] == short["code"] == 402
    assert "use duration 5" in long["fallback_suggestion"]
    assert "duration" not in short["fallback_suggestion"] and "credits grant" in short["fallback_suggestion"]
