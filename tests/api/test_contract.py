"""The contract's fields, limits and error envelope (docs/contract.md sections 1-4 and 6), on a real database."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reelgate.config import DEFAULT_MODEL
from tests.conftest import auth, create_key
from tests.images import astronaut, data_uri

IMAGE = data_uri(astronaut()[:256, :256], "JPEG")


def body(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {"model": DEFAULT_MODEL, "prompt": "A cat walking gracefully", "image_urls": [IMAGE]}
    value.update(overrides)
    return value


def assert_envelope(response: Any, status: int, error_type: str, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status
    assert error["type"] == error_type
    assert isinstance(error["message"], str) and error["message"]
    assert error.get("param") == param
    assert set(error) <= {"code", "message", "type", "param", "fallback_suggestion"}
    return dict(error)


def test_create_returns_pending_task_object(client: TestClient, api_key: str) -> None:
    response = client.post("/v1/videos/generations", json=body(duration=10), headers=auth(api_key))
    assert response.status_code == 200, response.text
    task = response.json()
    assert task["id"].startswith("task-unified-")
    assert task["object"] == "video.generation.task"
    assert task["type"] == "video"
    assert task["status"] == "pending"
    assert task["progress"] == 0
    assert task["model"] == DEFAULT_MODEL
    assert task["results"] == []
    assert "error" not in task
    assert task["task_info"]["can_cancel"] is True
    assert task["task_info"]["video_duration"] == 10
    assert task["task_info"]["engine"] == "motion"
    assert task["task_info"]["estimated_time"] >= 0
    assert task["usage"] == {"billing_rule": "per_second", "credits_reserved": 10, "user_group": "default"}
    fetched = client.get(f"/v1/tasks/{task['id']}", headers=auth(api_key)).json()
    assert fetched["id"] == task["id"] and fetched["status"] == "pending"


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"duration": "5"}, "duration"),
        ({"duration": 7}, "duration"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 5001}, "prompt"),
        ({"prompt": 12}, "prompt"),
        ({"image_urls": []}, "image_urls"),
        ({"image_urls": [IMAGE, IMAGE, IMAGE]}, "image_urls"),
        ({"image_urls": IMAGE}, "image_urls"),
        ({"image_urls": [IMAGE, "not a url"]}, "image_urls[1]"),
        ({"image_urls": ["ftp://example.com/a.png"]}, "image_urls[0]"),
        ({"image_urls": ["data:image/png;base64,!!!notbase64"]}, "image_urls[0]"),
        ({"aspect_ratio": "4:3"}, "aspect_ratio"),
        ({"callback_url": "http://example.com/hook"}, "callback_url"),
        ({"callback_url": "https://example.com/" + "a" * 2048}, "callback_url"),
        ({"model": 5}, "model"),
    ],
)
def test_invalid_fields_name_the_param(client: TestClient, api_key: str, overrides: dict[str, Any], param: str) -> None:
    response = client.post("/v1/videos/generations", json=body(**overrides), headers=auth(api_key))
    assert_envelope(response, 400, "invalid_request_error", param)


@pytest.mark.parametrize("missing", ["model", "prompt", "image_urls"])
def test_missing_required_field(client: TestClient, api_key: str, missing: str) -> None:
    value = body()
    del value[missing]
    error = assert_envelope(
        client.post("/v1/videos/generations", json=value, headers=auth(api_key)),
        400,
        "invalid_request_error",
        missing,
    )
    assert missing in error["message"]


def test_unknown_model_is_404_with_fallback(client: TestClient, api_key: str) -> None:
    response = client.post("/v1/videos/generations", json=body(model="sora-9"), headers=auth(api_key))
    error = assert_envelope(response, 404, "not_found_error", "model")
    assert error["fallback_suggestion"] == DEFAULT_MODEL


@pytest.mark.parametrize("header", [None, "Bearer nope", "Bearer rg_000000000000_wrong", "Basic abc"])
def test_bad_or_missing_key_is_401(client: TestClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    assert_envelope(client.post("/v1/videos/generations", json=body(), headers=headers), 401, "authentication_error")
    assert_envelope(client.get("/v1/tasks", headers=headers), 401, "authentication_error")


def test_revoked_key_is_401(client: TestClient, settings: Any) -> None:
    from typer.testing import CliRunner

    from reelgate.cli import app
    from tests.conftest import settings_env

    key = create_key(settings)
    assert client.get("/v1/tasks", headers=auth(key)).status_code == 200
    result = CliRunner().invoke(app, ["keys", "revoke", key], env=settings_env(settings))
    assert result.exit_code == 0, result.output
    revoked_at = time.monotonic()
    # The API process keeps verified keys (accounts/key_cache.py): a revoke made elsewhere (here the CLI) is
    # refused within the contract's bound of 1 s, not necessarily at once.
    while (response := client.get("/v1/tasks", headers=auth(key))).status_code == 200:
        assert time.monotonic() - revoked_at < 1.0, "a revoked key was still accepted 1 s after its revoke"
        time.sleep(0.02)
    assert_envelope(response, 401, "authentication_error")


def test_insufficient_credits_is_402_and_nothing_is_created(client: TestClient, settings: Any) -> None:
    key = create_key(settings, credits=7)
    assert client.post("/v1/videos/generations", json=body(), headers=auth(key)).status_code == 200
    assert_envelope(
        client.post("/v1/videos/generations", json=body(), headers=auth(key)), 402, "insufficient_quota_error"
    )
    assert len(client.get("/v1/tasks", headers=auth(key)).json()["data"]) == 1


def test_framework_errors_use_the_envelope(client: TestClient, api_key: str) -> None:
    headers = {**auth(api_key), "Content-Type": "application/json"}
    assert_envelope(
        client.post("/v1/videos/generations", content=b"{not json", headers=headers), 400, "invalid_request_error"
    )
    assert_envelope(
        client.post("/v1/videos/generations", content=b"[1, 2]", headers=headers), 400, "invalid_request_error"
    )
    assert_envelope(client.post("/v1/videos/generations", headers=auth(api_key)), 400, "invalid_request_error")
    assert_envelope(client.get("/v1/nowhere"), 404, "not_found_error")
    wrong = client.delete("/v1/videos/generations", headers=auth(api_key))
    assert_envelope(wrong, 405, "invalid_request_error")
    assert "POST" in wrong.headers["allow"]


def test_oversized_body_is_413_in_the_envelope(client: TestClient, api_key: str, settings: Any) -> None:
    huge = b'{"prompt": "' + b"x" * (settings.max_body_bytes + 10) + b'"}'
    headers = {**auth(api_key), "Content-Type": "application/json"}
    assert_envelope(client.post("/v1/videos/generations", content=huge, headers=headers), 413, "invalid_request_error")

    def chunks() -> Any:  # no Content-Length: the limit counts bytes as they arrive
        yield b'{"prompt": "'
        for _ in range(int(settings.max_body_mb) + 2):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    assert_envelope(
        client.post("/v1/videos/generations", content=chunks(), headers=headers), 413, "invalid_request_error"
    )


def test_task_id_rules(client: TestClient, api_key: str, settings: Any) -> None:
    assert_envelope(client.get("/v1/tasks/abc", headers=auth(api_key)), 400, "invalid_request_error", "task_id")
    missing = assert_envelope(
        client.get("/v1/tasks/task-unified-1-abcdefgh", headers=auth(api_key)), 404, "not_found_error", "task_id"
    )
    assert missing["message"] == "Task not found or expired"
    task_id = client.post("/v1/videos/generations", json=body(), headers=auth(api_key)).json()["id"]
    other = create_key(settings, name="other")
    other_answer = client.get(f"/v1/tasks/{task_id}", headers=auth(other))
    assert other_answer.status_code == 404 and other_answer.json()["error"] == missing
    assert_envelope(client.post(f"/v1/tasks/{task_id}/cancel", headers=auth(other)), 404, "not_found_error", "task_id")


def test_cancel_releases_credits_and_ends_failed(client: TestClient, settings: Any) -> None:
    key = create_key(settings, credits=5)
    task = client.post("/v1/videos/generations", json=body(), headers=auth(key)).json()
    assert_envelope(
        client.post("/v1/videos/generations", json=body(), headers=auth(key)), 402, "insufficient_quota_error"
    )
    cancelled = client.post(f"/v1/tasks/{task['id']}/cancel", headers=auth(key))
    assert cancelled.status_code == 200, cancelled.text
    result = cancelled.json()
    assert result["status"] == "failed"
    assert result["error"] == {
        "code": "request_cancelled",
        "message": "Task cancelled by request",
        "type": "task_error",
    }
    assert result["task_info"]["can_cancel"] is False
    assert_envelope(
        client.post(f"/v1/tasks/{task['id']}/cancel", headers=auth(key)), 400, "invalid_request_error", "task_id"
    )
    # The 5 credits are back: a new 5 s task fits again.
    assert client.post("/v1/videos/generations", json=body(), headers=auth(key)).status_code == 200


def test_list_pages_newest_first_with_cursor(client: TestClient, settings: Any) -> None:
    key = create_key(settings)
    created = [client.post("/v1/videos/generations", json=body(), headers=auth(key)).json()["id"] for _ in range(5)]
    seen: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if after:
            params["after"] = after
        page = client.get("/v1/tasks", params=params, headers=auth(key)).json()
        seen += [task["id"] for task in page["data"]]
        assert len(page["data"]) <= 2
        if not page["has_more"]:
            assert page.get("next_cursor") is None
            break
        after = page["next_cursor"]
    assert seen == list(reversed(created))
    assert_envelope(
        client.get("/v1/tasks", params={"limit": 0}, headers=auth(key)), 400, "invalid_request_error", "limit"
    )
    assert_envelope(
        client.get("/v1/tasks", params={"limit": 101}, headers=auth(key)), 400, "invalid_request_error", "limit"
    )
    assert_envelope(
        client.get("/v1/tasks", params={"after": "task-unified-1-zzzzzzzz"}, headers=auth(key)),
        400,
        "invalid_request_error",
        "after",
    )


def test_openapi_describes_errors_not_422(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    create = document["paths"]["/v1/videos/generations"]["post"]
    # The one 422 is ours (an Idempotency-Key reused with another body), in the envelope; never the framework's.
    assert "HTTPValidationError" not in str(document)
    for status in ("400", "401", "402", "403", "404", "409", "422", "429"):
        assert create["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorResponse")
    assert "bearerAuth" in document["components"]["securitySchemes"]


def test_openapi_documents_the_callback_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    log = paths["/v1/tasks/{task_id}/callbacks"]["get"]
    redeliver = paths["/v1/tasks/{task_id}/callbacks/redeliver"]["post"]
    for operation in (log, redeliver):
        assert "422" not in operation["responses"]
        for status in ("400", "401", "404"):
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert schema["$ref"].endswith("ErrorResponse")
    assert log["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("CallbackDeliveryList")


def test_health_and_metrics(client: TestClient, api_key: str) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    client.post("/v1/videos/generations", json=body(), headers=auth(api_key))
    text = client.get("/metrics").text
    assert 'reelgate_tasks{status="pending"} 1.0' in text
    assert "reelgate_queue_depth 1.0" in text
    assert 'reelgate_http_request_duration_seconds_count{method="POST",route="/v1/videos/generations"' in text
