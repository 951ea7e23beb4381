"""Durability of deliveries with real processes: `kill -9` of the delivering server between two attempts
(the retry resumes after a restart) and in the middle of an attempt (taken over once its lease runs out).
Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from reelgate.config import DEFAULT_MODEL, Settings
from reelgate.db.models import CallbackDelivery
from reelgate.resources import database_for
from tests.conftest import Backend, auth, settings_env
from tests.e2e.processes import Processes, free_port, ready, wait_until
from tests.webhooks.conftest import IMAGE, Key, callback_settings, new_key
from tests.webhooks.receiver import Receiver, Reply

pytestmark = pytest.mark.slow


class Server:
    def __init__(self, processes: Processes, settings: Settings, receiver: Receiver) -> None:
        self.processes = processes
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = settings_env(settings)
        self.env["REELGATE_EGRESS_CA_BUNDLE"] = receiver.ca_file
        self.env["REELGATE_CALLBACK_TIMEOUT_S"] = str(settings.callback_timeout_s)

    def start(self, name: str) -> subprocess.Popen[bytes]:
        process = self.processes.start(name, ["serve", "--port", str(self.port), "--workers", "0"], self.env)
        wait_until(lambda: ready(self.base_url), 30, f"{name} to start")
        return process

    def ended_task(self, key: Key, callback_url: str) -> str:
        body = {"model": DEFAULT_MODEL, "prompt": "zoom", "image_urls": [IMAGE], "callback_url": callback_url}
        created = httpx.post(f"{self.base_url}/v1/videos/generations", json=body, headers=auth(key.plaintext))
        assert created.status_code == 200, created.text
        task_id = str(created.json()["id"])
        cancelled = httpx.post(f"{self.base_url}/v1/tasks/{task_id}/cancel", headers=auth(key.plaintext))
        assert cancelled.status_code == 200, cancelled.text
        return task_id

    def deliveries(self, key: Key, task_id: str) -> list[dict[str, object]]:
        answer = httpx.get(f"{self.base_url}/v1/tasks/{task_id}/callbacks", headers=auth(key.plaintext))
        assert answer.status_code == 200, answer.text
        return list(answer.json()["data"])


def kill_when(settings: Settings, task_id: str, condition: Callable[[CallbackDelivery], bool], victim: int) -> None:
    """SIGKILL `victim` the moment the task's delivery row satisfies `condition` (polled every 10 ms)."""

    async def watch() -> None:
        db = database_for(settings)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                async with db.read() as session:
                    query = select(CallbackDelivery).where(CallbackDelivery.task_id == task_id)
                    row = (await session.scalars(query)).first()
                if row is not None and condition(row):
                    os.kill(victim, signal.SIGKILL)
                    return
                await asyncio.sleep(0.01)
            raise AssertionError("the delivery never reached the state to kill at")
        finally:
            await db.dispose()

    asyncio.run(watch())


def test_kill_9_between_attempts_the_retry_resumes_after_restart(
    tmp_path: Path, backend: Backend, receiver: Receiver, processes: Processes
) -> None:
    settings = callback_settings(tmp_path, backend, receiver)
    key = new_key(settings)
    receiver.script("/hook", Reply(500, b"not yet"))
    server = Server(processes, settings, receiver)
    first = server.start("serve-1")
    task_id = server.ended_task(key, receiver.url())
    # Attempt 1 answered 500 and its retry is scheduled 1 s later: kill the server in that gap.
    kill_when(settings, task_id, lambda row: row.attempts == 1 and row.lease_owner is None, first.pid)
    first.wait()
    time.sleep(1.5)  # the retry is now overdue, and nobody is left to send it
    assert len(receiver.requests()) == 1

    server.start("serve-2")
    [delivery] = wait_until(
        lambda: (s := server.deliveries(key, task_id)) and s[0]["state"] != "pending" and s, 30, "the retry"
    )
    assert delivery["state"] == "delivered"
    failed, succeeded = delivery["attempts"]  # type: ignore[misc]
    assert (failed["attempt"], failed["status_code"]) == (1, 500)
    assert (succeeded["attempt"], succeeded["status_code"]) == (2, 200)
    # The retry kept its schedule (due 1 s after attempt 1) and ran as soon as a deliverer was back.
    assert succeeded["scheduled_at"] == pytest.approx(failed["finished_at"] + 1.0, abs=0.01)
    assert succeeded["started_at"] >= succeeded["scheduled_at"] + 1.0
    first_request, second_request = receiver.requests()
    assert first_request.webhook_id == second_request.webhook_id == delivery["webhook_id"]


def test_kill_9_mid_attempt_is_taken_over_after_the_lease(
    tmp_path: Path, backend: Backend, receiver: Receiver, processes: Processes
) -> None:
    # A 1 s attempt timeout makes the delivery lease 6 s (timeout + margin), so the takeover comes quickly.
    settings = callback_settings(tmp_path, backend, receiver, callback_timeout_s=1.0)
    key = new_key(settings)
    let_go = threading.Event()
    receiver.script("/hook", Reply(200, hold=let_go))
    server = Server(processes, settings, receiver)
    first = server.start("serve-1")
    try:
        task_id = server.ended_task(key, receiver.url())
        receiver.wait_for(1, timeout_s=10)  # attempt 1 is in flight, held by the receiver
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    finally:
        let_go.set()

    server.start("serve-2")
    [delivery] = wait_until(
        lambda: (s := server.deliveries(key, task_id)) and s[0]["state"] != "pending" and s, 30, "the takeover"
    )
    assert delivery["state"] == "delivered"
    interrupted, rerun = delivery["attempts"]  # type: ignore[misc]
    assert interrupted["attempt"] == rerun["attempt"] == 1  # a crash does not use up the receiver's attempts
    assert interrupted["error"]["kind"] == "interrupted"
    assert rerun["ok"] is True
    assert len({r.webhook_id for r in receiver.requests()}) == 1 and len(receiver.requests()) == 2
