"""The worker routes on a real database: who may call them, what a token may claim, and fencing by the lease
each call names (a call under a lease that is gone changes nothing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from reelgate.app import create_app
from reelgate.cli import app as cli
from reelgate.config import DEFAULT_MODEL, Settings
from tests.conftest import Backend, auth, create_key, make_settings, migrate_db, settings_env
from tests.images import astronaut, data_uri

ENGINES = {"motion": {"available": True, "reason": ""}}


def new_token(settings: Settings, *, engines: str | None = None) -> dict[str, Any]:
    args = ["workers", "tokens", "create", "--name", "gpu-box", "--json"]
    if engines is not None:
        args += ["--engines", engines]
    result = CliRunner().invoke(cli, args, env=settings_env(settings))
    assert result.exit_code == 0, result.output
    created: dict[str, Any] = json.loads(result.output)
    return created


def register(client: TestClient, token: str, engines: dict[str, Any] | None = None) -> str:
    body = {"host": "gpu-box", "pid": 4242, "version": "0.1.0", "engines": engines or ENGINES, "concurrency": 1}
    answer = client.post("/worker/v1/workers", json=body, headers=auth(token))
    assert answer.status_code == 200, answer.text
    worker_id: str = answer.json()["worker_id"]
    return worker_id


def create_task(client: TestClient, key: str) -> str:
    body = {"model": DEFAULT_MODEL, "prompt": "slow push in", "image_urls": [data_uri(astronaut(), "JPEG")]}
    answer = client.post("/v1/videos/generations", json=body, headers=auth(key))
    assert answer.status_code == 200, answer.text
    task_id: str = answer.json()["id"]
    return task_id


@pytest.fixture
def routes(tmp_path: Path, backend: Backend) -> tuple[Settings, TestClient]:
    settings = make_settings(tmp_path / "home", backend)
    migrate_db(settings)
    return settings, TestClient(create_app(settings, workers=0))


def test_credentials_are_kept_apart(routes: tuple[Settings, TestClient]) -> None:
    settings, client = routes
    key = create_key(settings)
    token = new_token(settings)["token"]
    with client:
        assert token.startswith("rgw_")
        refused = client.post("/worker/v1/claims", json={}, headers=auth(key))
        assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
        assert "API key cannot call the worker routes" in refused.json()["error"]["message"]
        public = client.get("/v1/tasks", headers=auth(token))
        assert (
            public.status_code == 403 and "worker token cannot call the public API" in public.json()["error"]["message"]
        )
        assert client.post("/worker/v1/claims", json={}).status_code == 401
        forged = token[:-4] + "xxxx"
        assert client.post("/worker/v1/workers", json={}, headers=auth(forged)).status_code == 401
        # The worker routes are in the OpenAPI document, under their own tag, with the error envelope.
        spec = client.get("/openapi.json").json()
        claim = spec["paths"]["/worker/v1/claims"]["post"]
        assert claim["tags"] == ["Workers"]
        assert claim["responses"]["403"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorResponse")
        upload = spec["paths"]["/worker/v1/tasks/{task_id}/upload"]["post"]
        assert upload["responses"]["409"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorResponse")


def test_a_token_limited_to_wan_cannot_claim_motion(routes: tuple[Settings, TestClient]) -> None:
    settings, client = routes
    key = create_key(settings)
    limited = new_token(settings, engines="wan")["token"]
    with client:
        refused = client.post(
            "/worker/v1/workers",
            json={"host": "h", "pid": 1, "version": "0.1.0", "engines": ENGINES, "concurrency": 1},
            headers=auth(limited),
        )
        assert refused.status_code == 403 and refused.json()["error"]["param"] == "engines"
        worker_id = register(client, limited, {"wan": {"available": True, "reason": ""}})
        full = new_token(settings)["token"]
        register(client, full)  # a worker that serves motion, so the create is accepted
        create_task(client, key)
        claim = client.post(
            "/worker/v1/claims",
            json={"worker_id": worker_id, "engines": ["motion"], "wait_s": 0},
            headers=auth(limited),
        )
        assert claim.status_code == 403 and claim.json()["error"]["param"] == "engines"
        claim = client.post(
            "/worker/v1/claims",
            json={"worker_id": worker_id, "engines": ["wan", "motion"], "wait_s": 0},
            headers=auth(limited),
        )
        assert claim.status_code == 200 and claim.json()["data"] == []  # the motion task is not for it


def test_every_task_call_is_fenced_by_its_lease(routes: tuple[Settings, TestClient]) -> None:
    settings, client = routes
    key = create_key(settings)
    token = new_token(settings)["token"]
    other_token = new_token(settings)["token"]
    with client:
        worker_id = register(client, token)
        stranger = register(client, other_token)
        task_id = create_task(client, key)
        (claimed,) = client.post(
            "/worker/v1/claims", json={"worker_id": worker_id, "engines": ["motion"], "wait_s": 1}, headers=auth(token)
        ).json()["data"]
        lease = claimed["lease"]
        assert lease["task_id"] == task_id and lease["attempt"] == 1 and lease["lease_owner"] == worker_id
        assert set(claimed["job"]["input_links"]) == {"0"}  # the stored input, as a short-lived link
        fence = {"attempt": 1, "lease_owner": worker_id}
        beat = client.post(
            f"/worker/v1/tasks/{task_id}/heartbeat",
            json={**fence, "progress": 10, "estimated_time_s": 3},
            headers=auth(token),
        )
        assert beat.json() == {"alive": True, "cancelled": False}
        stale = client.post(
            f"/worker/v1/tasks/{task_id}/heartbeat",
            json={"attempt": 2, "lease_owner": worker_id, "progress": 50, "estimated_time_s": 1},
            headers=auth(token),
        )
        assert stale.json()["alive"] is False
        # Another token cannot act under this worker's lease, even knowing its name.
        borrowed = client.post(f"/worker/v1/tasks/{task_id}/upload", json=fence, headers=auth(other_token))
        assert borrowed.status_code == 404 and borrowed.json()["error"]["param"] == "worker_id"
        assert stranger
        # Completing without an upload is refused; an upload through the API, then a complete, wins.
        nothing = client.post(f"/worker/v1/tasks/{task_id}/complete", json={**fence, "info": {}}, headers=auth(token))
        assert nothing.status_code == 400 and nothing.json()["error"]["param"] == "attempt"
        target = client.post(f"/worker/v1/tasks/{task_id}/upload", json=fence, headers=auth(token)).json()
        assert target["needs_token"] is True and "/upload/video?" in target["url"]
        put = client.put(target["url"], content=b"not really a video", headers={**auth(token), **target["headers"]})
        assert put.status_code == 204, put.text
        done = client.post(
            f"/worker/v1/tasks/{task_id}/complete",
            json={**fence, "info": {"width": 64, "height": 64}},
            headers=auth(token),
        )
        assert done.json() == {"won": True}
        # The lease ended with the task: every later call under it is refused.
        late = client.post(f"/worker/v1/tasks/{task_id}/upload", json=fence, headers=auth(token))
        assert late.status_code == 409 and late.json()["error"]["param"] == "lease_owner"
        again = client.post(
            f"/worker/v1/tasks/{task_id}/fail",
            json={**fence, "code": "service_error", "message": "x"},
            headers=auth(token),
        )
        assert again.status_code == 409
        task = client.get(f"/v1/tasks/{task_id}", headers=auth(key)).json()
        assert task["status"] == "completed" and task["task_info"]["resolution"] == "64x64"


def test_revoking_a_token_releases_its_leases(routes: tuple[Settings, TestClient]) -> None:
    settings, client = routes
    key = create_key(settings)
    created = new_token(settings)
    token = created["token"]
    with client:
        worker_id = register(client, token)
        task_id = create_task(client, key)
        claimed = client.post(
            "/worker/v1/claims", json={"worker_id": worker_id, "engines": ["motion"], "wait_s": 1}, headers=auth(token)
        ).json()["data"]
        assert claimed and client.get(f"/v1/tasks/{task_id}", headers=auth(key)).json()["status"] == "processing"
        result = CliRunner().invoke(cli, ["workers", "tokens", "revoke", created["id"]], env=settings_env(settings))
        assert result.exit_code == 0, result.output
        assert client.get(f"/v1/tasks/{task_id}", headers=auth(key)).json()["status"] == "pending"
        beat = client.post(
            f"/worker/v1/tasks/{task_id}/heartbeat",
            json={"attempt": 1, "lease_owner": worker_id, "progress": 10, "estimated_time_s": 3},
            headers=auth(token),
        )
        assert beat.status_code == 401
        listing = CliRunner().invoke(cli, ["workers", "tokens", "list"], env=settings_env(settings))
        assert created["id"] in listing.output and "revoked" in listing.output
