"""Relay test helpers: settings pointing both relays at the local HTTPS fakes, an app with an in-process
worker, and task polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reelgate.config import DEFAULT_MODEL, Settings
from reelgate.db.models import Task
from reelgate.resources import database_for
from tests.conftest import Backend, auth, make_settings, migrate_db
from tests.images import astronaut, data_uri
from tests.relay.fakes import FAL_KEY, KLING_ACCESS_KEY, KLING_SECRET_KEY, Upstreams, fake_upstreams

FAL_MODEL = "kling-o1-via-fal"
MOTION_MODEL = "motion-only"
TERMINAL = ("completed", "failed")


@pytest.fixture
def upstreams(tmp_path: Path) -> Iterator[Upstreams]:
    with fake_upstreams(tmp_path) as ups:
        yield ups


def relay_settings(tmp_path: Path, backend: Backend, ups: Upstreams, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "kling_access_key": KLING_ACCESS_KEY,
        "kling_secret_key": KLING_SECRET_KEY,
        "kling_base_url": ups.base_url,
        "fal_key": FAL_KEY,
        "fal_base_url": ups.base_url,
        "egress_ca_bundle": str(ups.ca_path),
        "relay_poll_initial_s": 0.05,
        "relay_poll_max_s": 0.1,
        "relay_request_timeout_s": 3.0,
        "relay_busy_retry_s": 0.2,
        "relay_upstream_retries": 1,
        "poll_interval_s": 0.05,
        "models": {DEFAULT_MODEL: ["kling"], FAL_MODEL: ["fal"], MOTION_MODEL: ["motion"]},
    }
    values.update(overrides)
    settings = make_settings(tmp_path / "home", backend, **values)
    migrate_db(settings)
    return settings


def create(client: TestClient, key: str, model: str = DEFAULT_MODEL, **fields: Any) -> Any:
    body: dict[str, Any] = {
        "model": model,
        "prompt": "the astronaut waves",
        "image_urls": [data_uri(astronaut())],
        "duration": 5,
        **fields,
    }
    return client.post("/v1/videos/generations", json=body, headers=auth(key))


def wait_task(client: TestClient, key: str, task_id: str, *, until: tuple[str, ...] = TERMINAL) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = client.get(f"/v1/tasks/{task_id}", headers=auth(key)).json()
        if answer["status"] in until:
            return dict(answer)
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not reach {until}")


def read_task(settings: Settings, task_id: str) -> Task:
    async def run() -> Task:
        db = database_for(settings)
        try:
            async with db.read() as session:
                task = await session.get(Task, task_id)
                assert task is not None
                return task
        finally:
            await db.dispose()

    return asyncio.run(run())
