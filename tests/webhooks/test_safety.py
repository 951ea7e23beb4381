"""Where callbacks may go (checked at create and again before every attempt), and that one slow receiver
never holds up another's callback."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from reelgate.app import create_app
from reelgate.config import DEFAULT_MODEL
from tests.conftest import Backend
from tests.webhooks.conftest import (
    IMAGE,
    callback_settings,
    cancel,
    create_task,
    finished,
    new_key,
    wait_for_deliveries,
)
from tests.webhooks.receiver import Receiver, Reply


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost:{port}/hook",  # a name that resolves to 127.0.0.1
        "https://127.0.0.1:{port}/hook",
        "https://[::1]:{port}/hook",
        "https://0x7f.1:{port}/hook",
    ],
)
def test_internal_callback_urls_are_refused_at_create_without_the_development_flag(
    tmp_path: Path, sqlite_backend: Backend, receiver: Receiver, url: str
) -> None:
    settings = callback_settings(tmp_path, sqlite_backend, receiver, allow_private_networks=False)
    key = new_key(settings)
    body = {
        "model": DEFAULT_MODEL,
        "prompt": "zoom",
        "image_urls": [IMAGE],
        "callback_url": url.format(port=receiver.server_address[1]),
    }
    with TestClient(create_app(settings, workers=0)) as client:
        answer = client.post("/v1/videos/generations", json=body, headers=key.headers)
        assert client.get("/v1/tasks", headers=key.headers).json()["data"] == []
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "callback_url"
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert receiver.requests() == []


def test_addresses_are_checked_again_before_every_attempt(tmp_path: Path, backend: Backend, receiver: Receiver) -> None:
    # Accepted at create (the flag was on then), refused at delivery time (it is off now): what counts is
    # where the name points when the request is made, not when the task was created.
    permissive = callback_settings(tmp_path, backend, receiver)
    key = new_key(permissive)
    with TestClient(create_app(permissive, workers=0)) as client:
        task = create_task(client, key, receiver.url())
    strict = permissive.model_copy(update={"allow_private_networks": False})
    with TestClient(create_app(strict, workers=0)) as client:
        cancel(client, key, task["id"])
        [delivery] = wait_for_deliveries(client, key, task["id"], lambda s: bool(s and s[0]["attempts"]))
    first = delivery["attempts"][0]
    assert first["ok"] is False and first["error"]["kind"] == "blocked_address"
    assert "private or internal" in first["error"]["message"]
    assert "127.0.0.1" not in first["error"]["message"]  # the resolved address is never shown
    assert receiver.requests() == []


def test_a_slow_receiver_does_not_hold_up_other_callbacks(tmp_path: Path, backend: Backend, receiver: Receiver) -> None:
    settings = callback_settings(tmp_path, backend, receiver, callback_timeout_s=20)
    key = new_key(settings)
    let_go = threading.Event()
    receiver.script("/slow", Reply(200, hold=let_go))
    try:
        with TestClient(create_app(settings, workers=0)) as client:
            slow = create_task(client, key, receiver.url("/slow"))
            fast = create_task(client, key, receiver.url("/fast"))
            cancel(client, key, slow["id"])
            receiver.wait_for(1, timeout_s=10, path="/slow")
            cancel(client, key, fast["id"])
            # Arrives while the slow receiver still holds its request: deliveries run side by side.
            receiver.wait_for(1, timeout_s=10, path="/fast")
            [fast_delivery] = wait_for_deliveries(client, key, fast["id"], finished)
            assert fast_delivery["state"] == "delivered"
            let_go.set()
            [slow_delivery] = wait_for_deliveries(client, key, slow["id"], finished)
            assert slow_delivery["state"] == "delivered"
    finally:
        let_go.set()


def test_tls_and_connection_failures_are_failed_attempts(
    tmp_path: Path, sqlite_backend: Backend, receiver: Receiver
) -> None:
    # No CA bundle: the receiver's certificate is not trusted. And a port nobody listens on.
    settings = callback_settings(tmp_path, sqlite_backend, receiver, egress_ca_bundle="")
    key = new_key(settings)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_url = f"https://localhost:{unused.getsockname()[1]}/hook"
    with TestClient(create_app(settings, workers=0)) as client:
        untrusted = create_task(client, key, receiver.url())
        refused = create_task(client, key, closed_url)
        for task in (untrusted, refused):
            cancel(client, key, task["id"])
        first_attempt = lambda s: bool(s and s[0]["attempts"])  # noqa: E731
        [tls] = wait_for_deliveries(client, key, untrusted["id"], first_attempt)
        [connection] = wait_for_deliveries(client, key, refused["id"], first_attempt)
    assert tls["attempts"][0]["error"]["kind"] == "tls"
    assert connection["attempts"][0]["error"]["kind"] == "connection"
    assert tls["state"] == connection["state"] == "pending"  # retried on the schedule
    assert receiver.requests() == []
