"""Fixtures for callback tests: a real HTTPS receiver, settings that trust its CA, keys with their secrets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reelgate.accounts import service as accounts
from reelgate.accounts.keys import NewKey
from reelgate.config import DEFAULT_MODEL, Settings
from reelgate.resources import database_for
from tests.conftest import Backend, advertise_worker, auth, make_settings, migrate_db
from tests.images import astronaut, data_uri
from tests.webhooks.receiver import Receiver, running_receiver

IMAGE = data_uri(astronaut()[:128, :128], "JPEG")


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    with running_receiver(tmp_path) as running:
        yield running


def callback_settings(tmp_path: Path, backend: Backend, receiver: Receiver, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"egress_ca_bundle": receiver.ca_file, "poll_interval_s": 0.2}
    values.update(overrides)
    settings = make_settings(tmp_path / "home", backend, **values)
    migrate_db(settings)
    advertise_worker(settings)
    return settings


@dataclass(frozen=True)
class Key:
    id: str
    plaintext: str
    webhook_secret: str

    @property
    def headers(self) -> dict[str, str]:
        return auth(self.plaintext)


def new_key(settings: Settings, *, credits: float = 1000) -> Key:
    async def run() -> NewKey:
        db = database_for(settings)
        try:
            async with db.transaction() as session:
                created, _, _ = await accounts.create_key(
                    session, name="cb", user_group="default", credits_millicredits=round(credits * 1000)
                )
                return created
        finally:
            await db.dispose()

    created = asyncio.run(run())
    return Key(created.key_id, created.plaintext, created.webhook_secret)


def create_task(client: TestClient, key: Key, callback_url: str | None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": DEFAULT_MODEL, "prompt": "slow push in", "image_urls": [IMAGE], **fields}
    if callback_url is not None:
        body["callback_url"] = callback_url
    response = client.post("/v1/videos/generations", json=body, headers=key.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def cancel(client: TestClient, key: Key, task_id: str) -> dict[str, Any]:
    response = client.post(f"/v1/tasks/{task_id}/cancel", headers=key.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def deliveries(client: TestClient, key: Key, task_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/tasks/{task_id}/callbacks", headers=key.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def wait_for_deliveries(
    client: TestClient,
    key: Key,
    task_id: str,
    done: Callable[[list[dict[str, Any]]], bool],
    *,
    timeout_s: float = 30,
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        series = deliveries(client, key, task_id)
        if done(series):
            return series
        if time.monotonic() > deadline:
            raise AssertionError(f"the deliveries never reached the expected state: {series}")
        time.sleep(0.05)


def finished(series: list[dict[str, Any]]) -> bool:
    return bool(series) and series[0]["state"] != "pending"
