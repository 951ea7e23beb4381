"""Callbacks end to end in one process (the app with its deliverer) against a real local HTTPS receiver, on
SQLite and PostgreSQL: signature, body, the retry schedule as recorded, failures of every kind, redelivery."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from standardwebhooks import Webhook, WebhookVerificationError

from reelgate.app import create_app
from reelgate.webhooks.outbox import MAX_ATTEMPTS
from tests.conftest import Backend
from tests.webhooks.conftest import (
    callback_settings,
    cancel,
    create_task,
    deliveries,
    finished,
    new_key,
    wait_for_deliveries,
)
from tests.webhooks.receiver import Receiver, Reply


def gaps_s(attempts: list[dict[str, Any]]) -> list[float]:
    """Time from the end of each attempt to the start of the next, as the delivery log recorded it."""
    return [float(later["started_at"]) - float(earlier["finished_at"]) for earlier, later in pairwise(attempts)]


def test_success_is_signed_and_the_body_is_the_task_object(
    tmp_path: Path, backend: Backend, receiver: Receiver
) -> None:
    settings = callback_settings(tmp_path, backend, receiver)
    key = new_key(settings)
    with TestClient(create_app(settings, workers=0)) as client:
        task = create_task(client, key, receiver.url())
        cancel(client, key, task["id"])
        [request] = receiver.wait_for(1, timeout_s=10)
        series = wait_for_deliveries(client, key, task["id"], finished)
        shown = client.get(f"/v1/tasks/{task['id']}", headers=key.headers).json()

    # Verified by the reference Standard Webhooks library, with the secret shown at key creation.
    payload = Webhook(key.webhook_secret).verify(request.body, request.headers)
    assert payload == shown  # exactly what GET /v1/tasks/{id} shows
    assert payload["status"] == "failed" and payload["error"]["code"] == "request_cancelled"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"].startswith("msg_")
    with pytest.raises(WebhookVerificationError):
        Webhook(new_key(settings).webhook_secret).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):  # the signature covers the body
        Webhook(key.webhook_secret).verify(request.body.replace(b"failed", b"complet"), request.headers)

    [delivery] = series
    assert delivery["state"] == "delivered" and delivery["series"] == 1
    assert delivery["webhook_id"] == request.webhook_id and delivery["url"] == receiver.url()
    [attempt] = delivery["attempts"]
    assert attempt["ok"] is True and attempt["status_code"] == 200 and "error" not in attempt
    assert attempt["response_excerpt"] == '{"received": true}'
    assert attempt["latency_ms"] >= 0
    assert attempt["scheduled_at"] <= attempt["started_at"] <= attempt["finished_at"]


def test_a_completed_task_calls_back_with_its_result_link(tmp_path: Path, backend: Backend, receiver: Receiver) -> None:
    settings = callback_settings(tmp_path, backend, receiver)
    key = new_key(settings)
    with TestClient(create_app(settings, workers=1)) as client:
        task = create_task(client, key, receiver.url())
        [request] = receiver.wait_for(1, timeout_s=120)
        shown = client.get(f"/v1/tasks/{task['id']}", headers=key.headers).json()
        [delivery] = wait_for_deliveries(client, key, task["id"], finished)
    payload = Webhook(key.webhook_secret).verify(request.body, request.headers)
    assert payload == shown
    assert payload["status"] == "completed" and payload["progress"] == 100
    assert payload["results"] and payload["results"][0].startswith("http://testserver/v1/files/")
    assert delivery["state"] == "delivered"


def test_500_500_200_retries_after_about_1_and_2_seconds(tmp_path: Path, backend: Backend, receiver: Receiver) -> None:
    settings = callback_settings(tmp_path, backend, receiver)
    key = new_key(settings)
    receiver.script("/hook", Reply(500, b"oops"), Reply(500, b"still oops"))
    with TestClient(create_app(settings, workers=0)) as client:
        task = create_task(client, key, receiver.url())
        cancel(client, key, task["id"])
        [delivery] = wait_for_deliveries(client, key, task["id"], finished)

    assert delivery["state"] == "delivered"
    attempts = delivery["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["status_code"] for a in attempts] == [500, 500, 200]
    assert [a["ok"] for a in attempts] == [False, False, True]
    assert attempts[0]["error"] == {"kind": "http_status", "message": "HTTP 500"}
    assert attempts[1]["response_excerpt"] == "still oops"
    first, second = gaps_s(attempts)
    assert 0.9 <= first < 1.9, first
    assert second >= 1.9 and second < 3.5, second
    # One delivery, one webhook-id on every attempt; the timestamp (and so the signature) is per attempt.
    assert {r.webhook_id for r in receiver.requests()} == {delivery["webhook_id"]}
    assert len(receiver.requests()) == 3


def test_always_failing_receiver_gets_four_attempts_then_is_given_up(
    tmp_path: Path, backend: Backend, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    settings = callback_settings(tmp_path, backend, receiver)
    key = new_key(settings)
    receiver.default = Reply(503, b"down for maintenance")
    with TestClient(create_app(settings, workers=0)) as client:
        task = create_task(client, key, receiver.url())
        cancel(client, key, task["id"])
        [delivery] = wait_for_deliveries(client, key, task["id"], finished)
        assert len(receiver.wait_for(MAX_ATTEMPTS, timeout_s=5)) == MAX_ATTEMPTS

    assert delivery["state"] == "failed" and "finished_at" in delivery and "next_attempt_at" not in delivery
    assert [a["status_code"] for a in delivery["attempts"]] == [503] * MAX_ATTEMPTS
    assert all(a["response_excerpt"] == "down for maintenance" for a in delivery["attempts"])
    first, second, third = gaps_s(delivery["attempts"])
    assert 0.9 <= first < 1.9 and 1.9 <= second < 3.5 and 3.9 <= third < 6.0, (first, second, third)
    assert "callback given up after the last attempt" in caplog.text
    assert len(receiver.requests()) == MAX_ATTEMPTS  # and never a fifth


def test_a_receiver_that_hangs_past_the_timeout_is_a_failed_attempt(
    tmp_path: Path, backend: Backend, receiver: Receiver
) -> None:
    # The contract's timeout is 10 s; the setting is lowered so the test is quick, the behaviour is the same.
    settings = callback_settings(tmp_path, backend, receiver, callback_timeout_s=0.5)
    key = new_key(settings)
    receiver.script("/hook", Reply(200, delay_s=3.0))
    with TestClient(create_app(settings, workers=0)) as client:
        task = create_task(client, key, receiver.url())
        cancel(client, key, task["id"])
        [delivery] = wait_for_deliveries(client, key, task["id"], finished)

    first, second = delivery["attempts"]
    assert first["ok"] is False and "status_code" not in first
    assert first["error"]["kind"] == "timeout"
    assert 400 <= first["latency_ms"] < 2500  # cut at the timeout, not at the receiver's 3 s
    assert second["ok"] is True and delivery["state"] == "delivered"


def test_a_redirect_is_a_failure_and_is_not_followed(tmp_path: Path, backend: Backend, receiver: Receiver) -> None:
    settings = callback_settings(tmp_path, backend, receiver)
    key = new_key(settings)
    receiver.script("/hook", Reply(307, b"", headers={"Location": receiver.url("/elsewhere")}))
    with TestClient(create_app(settings, workers=0)) as client:
        task = create_task(client, key, receiver.url())
        cancel(client, key, task["id"])
        [delivery] = wait_for_deliveries(client, key, task["id"], finished)

    first, second = delivery["attempts"]
    assert first["status_code"] == 307 and first["error"]["kind"] == "redirect"
    assert "not followed" in first["error"]["message"]
    assert second["ok"] is True
    assert [r.path for r in receiver.requests()] == ["/hook", "/hook"]  # /elsewhere never asked


def test_redeliver_sends_a_new_series_with_the_same_webhook_id(
    tmp_path: Path, backend: Backend, receiver: Receiver
) -> None:
    settings = callback_settings(tmp_path, backend, receiver)
    key = new_key(settings)
    with TestClient(create_app(settings, workers=0)) as client:
        task = create_task(client, key, receiver.url())
        refused = client.post(f"/v1/tasks/{task['id']}/callbacks/redeliver", headers=key.headers)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "task_id"  # not finished yet
        cancel(client, key, task["id"])
        wait_for_deliveries(client, key, task["id"], finished)
        answer = client.post(f"/v1/tasks/{task['id']}/callbacks/redeliver", headers=key.headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["series"] == 2 and answer.json()["state"] == "pending"
        series = wait_for_deliveries(client, key, task["id"], lambda s: len(s) == 2 and finished(s))
        first, second = receiver.wait_for(2, timeout_s=10)

    assert [s["series"] for s in series] == [2, 1]  # newest first
    assert series[0]["webhook_id"] == series[1]["webhook_id"] == first.webhook_id == second.webhook_id
    assert all(s["state"] == "delivered" for s in series)
    assert json.loads(first.body) == json.loads(second.body)
    Webhook(key.webhook_secret).verify(second.body, second.headers)


def test_redeliver_and_log_refuse_what_get_task_refuses(tmp_path: Path, backend: Backend, receiver: Receiver) -> None:
    settings = callback_settings(tmp_path, backend, receiver)
    key, other = new_key(settings), new_key(settings)
    with TestClient(create_app(settings, workers=0)) as client:
        silent = create_task(client, key, None)
        cancel(client, key, silent["id"])
        no_url = client.post(f"/v1/tasks/{silent['id']}/callbacks/redeliver", headers=key.headers)
        assert no_url.status_code == 400 and "callback_url" in no_url.json()["error"]["message"]
        assert deliveries(client, key, silent["id"]) == []  # no callback_url, no delivery
        for method, path in (("GET", "/callbacks"), ("POST", "/callbacks/redeliver")):
            foreign = client.request(method, f"/v1/tasks/{silent['id']}{path}", headers=other.headers)
            assert foreign.status_code == 404
            assert foreign.json()["error"] == {
                "code": 404,
                "message": "Task not found or expired",
                "type": "not_found_error",
                "param": "task_id",
            }
            malformed = client.request(method, f"/v1/tasks/abc{path}", headers=key.headers)
            assert malformed.status_code == 400 and malformed.json()["error"]["param"] == "task_id"
            assert client.request(method, f"/v1/tasks/{silent['id']}{path}").status_code == 401
        unknown_query = client.get(f"/v1/tasks/{silent['id']}/callbacks?limit=5", headers=key.headers)
        assert unknown_query.status_code == 400 and unknown_query.json()["error"]["param"] == "limit"
