"""End to end in one process: create, watch real progress, download the MP4 through its signed link."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from fastapi.testclient import TestClient

from reelgate.app import create_app
from reelgate.config import DEFAULT_MODEL, Settings
from reelgate.media.framing import fit_to_frame, output_size
from reelgate.media.video import probe_video, read_frames
from tests.conftest import LONG_RUN_SHORT_SIDE_PX, auth, create_key
from tests.images import astronaut, coffee, data_uri, shifted


@pytest.fixture
def running(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, workers=1), raise_server_exceptions=False) as client:
        yield client


def wait_done(client: TestClient, key: str, task_id: str, timeout_s: float = 120) -> list[dict[str, Any]]:
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        task = client.get(f"/v1/tasks/{task_id}", headers=auth(key)).json()
        seen.append(task)
        if task["status"] in ("completed", "failed"):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"task did not finish: {seen[-1]}")


def download(client: TestClient, url: str, dest: Path, headers: dict[str, str] | None = None) -> Any:
    parts = urlsplit(url)
    response = client.get(f"{parts.path}?{parts.query}", headers=headers or {})
    if response.status_code == 200:
        dest.write_bytes(response.content)
    return response


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize(("duration", "ratio"), [(5, "16:9"), (10, "9:16")])
def test_first_frame_video(running: TestClient, settings: Settings, tmp_path: Path, duration: int, ratio: str) -> None:
    key = create_key(settings)
    image = astronaut()
    body = {
        "model": DEFAULT_MODEL,
        "prompt": "slow zoom in",
        "image_urls": [data_uri(image)],
        "duration": duration,
        "aspect_ratio": ratio,
    }
    created = running.post("/v1/videos/generations", json=body, headers=auth(key)).json()
    history = wait_done(running, key, created["id"])
    final = history[-1]
    assert final["status"] == "completed", final
    assert final["progress"] == 100 and final["results"] and final["task_info"]["can_cancel"] is False
    progresses = [task["progress"] for task in history]
    assert progresses == sorted(progresses)
    path = tmp_path / "out.mp4"
    assert download(running, final["results"][0], path).status_code == 200
    info = probe_video(path)
    width, height = output_size(ratio, settings.motion_short_side_px)
    assert (info.width, info.height, info.frames, info.codec, info.pix_fmt) == (
        width,
        height,
        duration * 24,
        "h264",
        "yuv420p",
    )
    first = next(iter(read_frames(path)))
    assert psnr(first, fit_to_frame(image, width, height)) > 30


def test_first_and_last_frame_video(running: TestClient, settings: Settings, tmp_path: Path) -> None:
    key = create_key(settings)
    first, last = astronaut(), shifted(astronaut(), 24)
    body = {
        "model": DEFAULT_MODEL,
        "prompt": "A cat walking gracefully",
        "image_urls": [data_uri(first, "JPEG"), data_uri(last, "WEBP")],
        "aspect_ratio": "1:1",
    }
    created = running.post("/v1/videos/generations", json=body, headers=auth(key)).json()
    final = wait_done(running, key, created["id"])[-1]
    assert final["status"] == "completed", final
    assert final["task_info"]["method"]
    path = tmp_path / "out.mp4"
    download(running, final["results"][0], path)
    frames = list(read_frames(path))
    width, height = output_size("1:1", settings.motion_short_side_px)
    assert len(frames) == 120
    assert psnr(frames[0], fit_to_frame(first, width, height)) > 30
    assert psnr(frames[-1], fit_to_frame(last, width, height)) > 30


def test_aspect_ratio_defaults_to_nearest_of_first_image(running: TestClient, settings: Settings) -> None:
    key = create_key(settings)
    portrait = coffee().transpose(1, 0, 2).copy()  # 600x400 -> 400 wide, 600 tall
    body = {"model": DEFAULT_MODEL, "prompt": "pan left", "image_urls": [data_uri(portrait)]}
    created = running.post("/v1/videos/generations", json=body, headers=auth(key)).json()
    final = wait_done(running, key, created["id"])[-1]
    assert final["status"] == "completed" and final["task_info"]["aspect_ratio"] == "9:16"


def test_signed_links_range_tamper_and_expiry(running: TestClient, settings: Settings, tmp_path: Path) -> None:
    key = create_key(settings)
    body = {"model": DEFAULT_MODEL, "prompt": "zoom", "image_urls": [data_uri(astronaut())]}
    created = running.post("/v1/videos/generations", json=body, headers=auth(key)).json()
    url = wait_done(running, key, created["id"])[-1]["results"][0]
    partial = download(running, url, tmp_path / "x", headers={"Range": "bytes=0-99"})
    assert partial.status_code == 206 and len(partial.content) == 100
    assert partial.headers["content-range"].startswith("bytes 0-99/")
    tampered = url.replace("signature=", "signature=0")
    assert download(running, tampered, tmp_path / "y").json()["error"]["code"] == 404
    later_expiry = url.replace("expires=", "expires=9")
    assert download(running, later_expiry, tmp_path / "z").status_code == 404
    resources = running.app.state.resources  # type: ignore[attr-defined]
    key_name = urlsplit(url).path.rsplit("/", 1)[1]
    past = resources.links.url_for(key_name, expires_at=int(time.time()) - 1)
    expired = download(running, past, tmp_path / "w")
    assert expired.status_code == 404 and "expired" in expired.json()["error"]["message"]


def test_bad_remote_image_fails_the_task_not_the_worker(running: TestClient, settings: Settings) -> None:
    key = create_key(settings, credits=10)
    body = {"model": DEFAULT_MODEL, "prompt": "zoom", "image_urls": ["http://127.0.0.1:9/none.png"]}
    created = running.post("/v1/videos/generations", json=body, headers=auth(key)).json()
    final = wait_done(running, key, created["id"])[-1]
    assert final["status"] == "failed"
    assert final["error"]["code"] == "image_processing_error"
    assert "image_urls[0]" in final["error"]["message"]
    # Credits released: two more 5 s tasks fit into the 10 credits, and the worker still runs them.
    good = {"model": DEFAULT_MODEL, "prompt": "zoom", "image_urls": [data_uri(astronaut())]}
    for _ in range(2):
        again = running.post("/v1/videos/generations", json=good, headers=auth(key))
        assert again.status_code == 200
    assert wait_done(running, key, again.json()["id"])[-1]["status"] == "completed"


def test_cancel_while_processing_stops_the_work(settings: Settings) -> None:
    # A long 10 s job: it runs for seconds, so the cancel lands mid-work.
    big = settings.model_copy(update={"motion_short_side_px": LONG_RUN_SHORT_SIDE_PX})
    key = create_key(big, credits=10)
    body = {"model": DEFAULT_MODEL, "prompt": "zoom", "image_urls": [data_uri(astronaut())], "duration": 10}
    with TestClient(create_app(big, workers=1), raise_server_exceptions=False) as client:
        task_id = client.post("/v1/videos/generations", json=body, headers=auth(key)).json()["id"]
        deadline = time.monotonic() + 30
        while client.get(f"/v1/tasks/{task_id}", headers=auth(key)).json()["progress"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        cancelled = client.post(f"/v1/tasks/{task_id}/cancel", headers=auth(key)).json()
        assert cancelled["status"] == "failed" and cancelled["error"]["code"] == "request_cancelled"
        time.sleep(2)
        final = client.get(f"/v1/tasks/{task_id}", headers=auth(key)).json()
        assert final["status"] == "failed" and final["results"] == []
        # The worker let go (its heartbeat saw the cancel) and the credits came back: it takes new work.
        again = client.post("/v1/videos/generations", json={**body, "duration": 5}, headers=auth(key)).json()
        assert wait_done(client, key, again["id"])[-1]["status"] == "completed"
        videos = list((big.home / "videos").glob("*.mp4"))
        assert [p.name for p in videos] == [f"{again['id']}-a1.mp4"]
