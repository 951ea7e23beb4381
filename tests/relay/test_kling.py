"""The Kling relay against a local fake of Kling's documented Omni-Video API (real HTTPS, JWT checked)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from reelgate.app import create_app
from reelgate.config import DEFAULT_MODEL
from tests.conftest import Backend, advertise_worker, auth, create_key
from tests.relay.conftest import MOTION_MODEL, create, read_task, relay_settings, wait_task
from tests.relay.fakes import Upstreams


def test_submitted_processing_succeed_is_copied_into_our_storage(
    tmp_path: Path, sqlite_backend: Backend, upstreams: Upstreams
) -> None:
    settings = relay_settings(tmp_path, sqlite_backend, upstreams)
    key = create_key(settings)
    with TestClient(create_app(settings, workers=1)) as client:
        created = create(client, key, aspect_ratio="9:16", image_urls=[_png(), _png()])
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        done = wait_task(client, key, task_id)
        assert done["status"] == "completed", done
        assert done["task_info"]["engine"] == "kling"
        assert done["task_info"]["can_cancel"] is False
        [link] = done["results"]
        assert link.startswith("http://testserver/v1/files/") and upstreams.base_url not in link
        video = client.get(link.removeprefix("http://testserver"))
        assert video.status_code == 200 and video.content == upstreams.video
    kling = upstreams.kling
    assert kling.accepted == 1 and kling.auth_failures == []
    [body] = kling.submits
    assert body["model_name"] == "kling-video-o1"
    assert body["external_task_id"] == task_id
    assert body["duration"] == "5" and body["mode"] == "std"
    assert body["prompt"] == "the astronaut waves"
    assert "aspect_ratio" not in body  # ignored by Kling with a first frame: the frames carry the ratio
    assert [item["type"] for item in body["image_list"]] == ["first_frame", "end_frame"]
    for item in body["image_list"]:
        with Image.open(io.BytesIO(base64.b64decode(item["image_url"]))) as image:
            assert image.format == "JPEG" and image.size == (720, 1280)  # cropped to the requested 9:16
    task = read_task(settings, task_id)
    assert task.upstream_provider == "kling" and task.upstream_task_id in kling.tasks
    assert task.upstream_state == "done" and task.credits_state == "captured"
    assert task.result_info["upstream_task_id"] == task.upstream_task_id


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("Failure to pass the risk control system", "content_policy_violation"),
        ("internal generation error", "generation_failed_no_content"),
    ],
)
def test_failed_status_message_becomes_the_error(
    tmp_path: Path, sqlite_backend: Backend, upstreams: Upstreams, message: str, code: str
) -> None:
    upstreams.kling.statuses = ["submitted", "processing", "failed"]
    upstreams.kling.failure_message = message
    settings = relay_settings(tmp_path, sqlite_backend, upstreams)
    key = create_key(settings)
    with TestClient(create_app(settings, workers=1)) as client:
        task_id = create(client, key).json()["id"]
        done = wait_task(client, key, task_id)
    assert done["status"] == "failed"
    assert done["error"]["code"] == code and message in done["error"]["message"]
    assert read_task(settings, task_id).credits_state == "released"


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ([1102], "quota_exceeded"),
        ([1301], "content_policy_violation"),
        ([1201], "invalid_parameters"),
        ([5000, 5001], "service_unavailable"),  # retried once (relay_upstream_retries=1), then given up
    ],
)
def test_submit_error_codes(
    tmp_path: Path, sqlite_backend: Backend, upstreams: Upstreams, codes: list[int], expected: str
) -> None:
    upstreams.kling.submit_codes.extend(codes)
    settings = relay_settings(tmp_path, sqlite_backend, upstreams)
    key = create_key(settings)
    with TestClient(create_app(settings, workers=1)) as client:
        task_id = create(client, key).json()["id"]
        done = wait_task(client, key, task_id)
    assert done["status"] == "failed" and done["error"]["code"] == expected, done
    assert upstreams.kling.accepted == 0 and len(upstreams.kling.submits) == len(codes)
    assert read_task(settings, task_id).credits_state == "released"


@pytest.mark.parametrize("code", [1302, 1303])
def test_busy_upstream_sends_the_task_back_to_pending_then_it_completes(
    tmp_path: Path, sqlite_backend: Backend, upstreams: Upstreams, code: int
) -> None:
    upstreams.kling.submit_codes.extend([code, code])
    settings = relay_settings(tmp_path, sqlite_backend, upstreams, max_attempts=2)
    key = create_key(settings)
    with TestClient(create_app(settings, workers=1)) as client:
        task_id = create(client, key).json()["id"]
        done = wait_task(client, key, task_id)
    assert done["status"] == "completed", done
    task = read_task(settings, task_id)
    # Claimed three times, yet waiting for the upstream spent no attempt (max_attempts grew with each wait).
    assert task.attempt == 3 and task.max_attempts == 4
    assert len(upstreams.kling.submits) == 3 and upstreams.kling.accepted == 1


def test_poll_server_errors_are_retried(tmp_path: Path, sqlite_backend: Backend, upstreams: Upstreams) -> None:
    upstreams.kling.poll_codes.extend([5000])
    settings = relay_settings(tmp_path, sqlite_backend, upstreams)
    key = create_key(settings)
    with TestClient(create_app(settings, workers=1)) as client:
        done = wait_task(client, key, create(client, key).json()["id"])
    assert done["status"] == "completed"
    assert upstreams.kling.accepted == 1


def test_unanswered_submit_is_resolved_by_external_id_not_resubmitted(
    tmp_path: Path, sqlite_backend: Backend, upstreams: Upstreams
) -> None:
    upstreams.kling.submit_hang_s = 3.0  # accepted, but the answer comes after our 1 s timeout
    settings = relay_settings(tmp_path, sqlite_backend, upstreams, relay_request_timeout_s=1.0)
    key = create_key(settings)
    with TestClient(create_app(settings, workers=1)) as client:
        done = wait_task(client, key, create(client, key).json()["id"])
    assert done["status"] == "completed", done
    assert upstreams.kling.accepted == 1 and len(upstreams.kling.submits) == 1
    assert upstreams.kling.external_lookups >= 1


def test_refused_credentials_fail_the_task_degrade_readiness_and_route_elsewhere(
    tmp_path: Path, sqlite_backend: Backend, upstreams: Upstreams
) -> None:
    settings = relay_settings(
        tmp_path, sqlite_backend, upstreams, kling_secret_key="not-the-secret-but-long-enough-for-hs256"
    )
    key = create_key(settings)
    with TestClient(create_app(settings, workers=1)) as client:
        assert client.get("/readyz").json()["status"] == "ready"
        done = wait_task(client, key, create(client, key).json()["id"])
        assert done["status"] == "failed" and done["error"]["code"] == "service_error"
        assert "misconfigured" in done["error"]["message"]
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert "kling" in ready.json()["degraded"]
        # Every route of the model is out now: 502 naming a model that is available.
        refused = create(client, key)
        assert refused.status_code == 502
        error = refused.json()["error"]
        assert error["type"] == "upstream_error" and error["fallback_suggestion"] in (MOTION_MODEL, "kling-o1-via-fal")
    assert upstreams.kling.auth_failures == [1002]  # the bad signature was seen and refused with Kling's code


def test_prompt_over_kling_limit_is_refused_at_create(
    tmp_path: Path, sqlite_backend: Backend, upstreams: Upstreams
) -> None:
    settings = relay_settings(tmp_path, sqlite_backend, upstreams)
    key = create_key(settings)
    advertise_worker(settings, ("kling",))  # a worker that serves kling but claims nothing in this test
    with TestClient(create_app(settings, workers=0)) as client:
        answer = create(client, key, prompt="x" * 2501)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["param"] == "prompt" and "2500" in error["message"] and "2501" in error["message"]
        assert create(client, key, prompt="x" * 2500).status_code == 200
    assert upstreams.kling.submits == []


def test_missing_credentials_skip_the_route(tmp_path: Path, sqlite_backend: Backend, upstreams: Upstreams) -> None:
    settings = relay_settings(
        tmp_path,
        sqlite_backend,
        upstreams,
        kling_access_key="",
        models={DEFAULT_MODEL: ["kling", "fal", "motion"]},
    )
    key = create_key(settings)
    # The worker has no Kling credentials either: it advertises kling as unavailable, so routing takes fal.
    with TestClient(create_app(settings, workers=1)) as client:
        task = create(client, key).json()
        assert task["task_info"]["engine"] == "fal"


def _png() -> str:
    from tests.images import astronaut, data_uri

    return data_uri(astronaut())


def test_auth_header_is_bearer_jwt(upstreams: Upstreams) -> None:
    """Sanity of the fake itself: it refuses what Kling refuses."""
    import ssl

    import httpx

    url = f"{upstreams.base_url}/v1/videos/omni-video/x"
    with httpx.Client(verify=ssl.create_default_context(cafile=str(upstreams.ca_path))) as http:
        assert http.get(url).json()["code"] == 1001
        assert http.get(url, headers=auth("garbage")).json()["code"] == 1002
