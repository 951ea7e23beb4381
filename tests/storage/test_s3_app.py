"""The service on S3 storage, end to end with an in-process worker and a real S3-protocol server on loopback:
proxy links streamed from the bucket with Range, presigned links straight to the bucket, the sweep emptying
the bucket, a refused start on a missing bucket, and `/readyz` once the bucket is gone. Nothing is ever
written under `REELGATE_HOME/videos`."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from reelgate.app import create_app
from reelgate.config import DEFAULT_MODEL, Settings
from reelgate.media.video import probe_video
from reelgate.tasks.sweep import sweep_expired_results
from tests.conftest import auth, create_key, make_settings, migrate_db, sqlite_backend_at
from tests.e2e.test_generation import wait_done
from tests.images import astronaut, data_uri, shifted
from tests.s3server import REGION, admin_client, bucket_keys, delete_bucket

PREFIX = "reelgate"


def _settings(tmp_path: Path, endpoint: str, bucket: str, **overrides: object) -> Settings:
    settings = make_settings(
        tmp_path / "home",
        sqlite_backend_at(tmp_path),
        storage_url=f"s3://{bucket}/{PREFIX}",
        s3_endpoint_url=endpoint,
        s3_region=REGION,
        **overrides,
    )
    migrate_db(settings)
    return settings


def _create(client: TestClient, key: str) -> str:
    first, last = data_uri(astronaut(), "JPEG"), data_uri(shifted(astronaut(), 6, 0), "PNG")
    body = {"model": DEFAULT_MODEL, "prompt": "morph", "image_urls": [first, last]}
    answer = client.post("/v1/videos/generations", json=body, headers=auth(key))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def _stored_objects(task_id: str) -> list[str]:
    return [
        f"{PREFIX}/inputs/{task_id}/0.jpeg",
        f"{PREFIX}/inputs/{task_id}/1.png",
        f"{PREFIX}/{task_id}-a1.jpg",  # the poster
        f"{PREFIX}/{task_id}-a1.mp4",
    ]


def test_proxy_links_stream_the_video_from_the_bucket_with_range(
    tmp_path: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    settings = _settings(tmp_path, s3_endpoint, s3_bucket, result_links="proxy")
    key = create_key(settings)
    with TestClient(create_app(settings, workers=1)) as client:
        task_id = _create(client, key)
        done = wait_done(client, key, task_id)[-1]
        assert done["status"] == "completed", done
        assert bucket_keys(s3_endpoint, s3_bucket) == _stored_objects(task_id)
        link = urlsplit(done["results"][0])
        assert link.path == f"/v1/files/{task_id}-a1.mp4"
        whole = client.get(f"{link.path}?{link.query}")
        assert whole.status_code == 200
        stored = admin_client(s3_endpoint).get_object(Bucket=s3_bucket, Key=f"{PREFIX}/{task_id}-a1.mp4")
        assert whole.content == stored["Body"].read()
        size = len(whole.content)
        ranged = client.get(f"{link.path}?{link.query}", headers={"Range": "bytes=100-1099"})
        assert ranged.status_code == 206
        assert ranged.headers["content-range"] == f"bytes 100-1099/{size}"
        assert ranged.content == whole.content[100:1100]
        tail = client.get(f"{link.path}?{link.query}", headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == whole.content[-10:]
    video = tmp_path / "proxied.mp4"
    video.write_bytes(whole.content)
    assert probe_video(video).codec == "h264"
    assert not (settings.home / "videos").exists()


def test_presigned_links_download_from_the_bucket_and_the_sweep_empties_it(
    tmp_path: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    settings = _settings(tmp_path, s3_endpoint, s3_bucket)  # presigned: the default with S3
    assert settings.resolved_result_links == "presigned"
    key = create_key(settings)
    with TestClient(create_app(settings, workers=1)) as client:
        task_id = _create(client, key)
        done = wait_done(client, key, task_id)[-1]
        assert done["status"] == "completed", done
        url = done["results"][0]
        assert url.startswith(f"{s3_endpoint}/{s3_bucket}/{PREFIX}/{task_id}-a1.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256")
        # Straight from the bucket with a plain HTTP client: the video's bytes never pass through the API.
        answer = httpx.get(url)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "video/mp4"
        video = tmp_path / "presigned.mp4"
        video.write_bytes(answer.content)
        info = probe_video(video)
        assert (info.codec, info.pix_fmt, info.faststart) == ("h264", "yuv420p", True)
        assert bucket_keys(s3_endpoint, s3_bucket) == _stored_objects(task_id)

        resources = client.app.state.resources  # type: ignore[attr-defined]
        assert client.portal.call(sweep_expired_results, resources) == 0  # type: ignore[union-attr]
        assert bucket_keys(s3_endpoint, s3_bucket) == _stored_objects(task_id)
        later = time.time() + settings.result_ttl_s + 1
        assert client.portal.call(lambda: sweep_expired_results(resources, now=later)) == 1  # type: ignore[union-attr]
        assert bucket_keys(s3_endpoint, s3_bucket) == []
    assert not (settings.home / "videos").exists()


def test_the_app_refuses_to_start_on_a_missing_bucket(tmp_path: Path, s3_endpoint: str, aws_credentials: None) -> None:
    settings = _settings(tmp_path, s3_endpoint, "reelgate-never-created")
    app = create_app(settings, workers=1)
    with (
        pytest.raises(
            RuntimeError, match=r"^the storage cannot be used: bucket reelgate-never-created does not exist$"
        ),
        TestClient(app),
    ):
        pass


def test_readiness_names_a_bucket_that_disappeared(tmp_path: Path, s3_endpoint: str, s3_bucket: str) -> None:
    settings = _settings(tmp_path, s3_endpoint, s3_bucket)
    with TestClient(create_app(settings, workers=0)) as client:
        assert client.get("/readyz").status_code == 200
        delete_bucket(s3_endpoint, s3_bucket)
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["error"]["message"] == f"Storage unavailable: bucket {s3_bucket} does not exist"
        assert answer.headers["retry-after"] == "30"
