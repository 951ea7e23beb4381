"""The outbox: written with the terminal state and only with it, once per outcome; several deliverers on one
database never send the same attempt; rotation signs with both secrets."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from standardwebhooks import Webhook

from reelgate.app import create_app
from reelgate.config import Settings
from reelgate.db.models import ApiKey, CallbackDelivery
from reelgate.errors import TaskErrorCode
from reelgate.queue import terminal
from reelgate.queue.states import UNFINISHED
from reelgate.resources import database_for
from reelgate.tasks.settlement import task_ended
from reelgate.webhooks import outbox
from reelgate.webhooks import repository as webhooks
from reelgate.webhooks.signing import generate_secret
from tests.conftest import Backend
from tests.webhooks.conftest import callback_settings, cancel, create_task, finished, new_key, wait_for_deliveries
from tests.webhooks.receiver import Receiver, Reply


async def _count_deliveries(settings: Settings, task_id: str) -> int:
    db = database_for(settings)
    try:
        async with db.read() as session:
            query = select(func.count()).select_from(CallbackDelivery).where(CallbackDelivery.task_id == task_id)
            return int(await session.scalar(query) or 0)
    finally:
        await db.dispose()


def test_one_outbox_row_per_outcome_and_none_without_the_terminal_commit(
    tmp_path: Path, backend: Backend, receiver: Receiver
) -> None:
    settings = callback_settings(tmp_path, backend, receiver)
    key = new_key(settings)
    with TestClient(create_app(settings, workers=0)) as client:
        task_id = create_task(client, key, receiver.url())["id"]

    async def scenario() -> None:
        db = database_for(settings)
        try:
            # A transaction that ends the task but does not commit leaves no callback behind.
            with pytest.raises(RuntimeError):
                async with db.transaction() as session:
                    ended = await terminal.fail(
                        session,
                        task_ended,
                        task_id,
                        code=TaskErrorCode.SERVICE_ERROR,
                        message="x",
                        from_statuses=UNFINISHED,
                    )
                    assert ended is not None
                    raise RuntimeError("crash before commit")
            assert await _count_deliveries(settings, task_id) == 0
            # Two writers race to end it: one wins and writes the one callback, the other writes nothing.
            for _ in range(2):
                async with db.transaction() as session:
                    await terminal.fail(
                        session,
                        task_ended,
                        task_id,
                        code=TaskErrorCode.SERVICE_ERROR,
                        message="x",
                        from_statuses=UNFINISHED,
                    )
            assert await _count_deliveries(settings, task_id) == 1
            # And the database itself refuses a second outbox row for the same outcome.
            with pytest.raises(IntegrityError):
                async with db.transaction() as session:
                    await outbox.enqueue_task_callback(session, task_id, now=time.time())
            assert await _count_deliveries(settings, task_id) == 1
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_two_deliverers_on_one_database_never_send_the_same_attempt(
    tmp_path: Path, backend: Backend, receiver: Receiver
) -> None:
    settings = callback_settings(tmp_path, backend, receiver)
    key = new_key(settings)
    # Slow enough answers that both deliverers are busy at the same time.
    receiver.default = Reply(200, delay_s=0.05)
    with (
        TestClient(create_app(settings, workers=0)) as first,
        TestClient(create_app(settings, workers=0)) as second,
    ):
        task_ids = [create_task(first, key, receiver.url())["id"] for _ in range(24)]
        for index, task_id in enumerate(task_ids):
            cancel(first if index % 2 else second, key, task_id)
        for task_id in task_ids:
            [delivery] = wait_for_deliveries(first, key, task_id, finished)
            assert delivery["state"] == "delivered" and len(delivery["attempts"]) == 1
    ids = [request.webhook_id for request in receiver.requests()]
    assert len(ids) == len(set(ids)) == len(task_ids)


def test_during_rotation_both_secrets_sign(tmp_path: Path, backend: Backend, receiver: Receiver) -> None:
    settings = callback_settings(tmp_path, backend, receiver)
    key = new_key(settings)
    rotated = generate_secret()

    async def rotate() -> None:
        db = database_for(settings)
        try:
            async with db.transaction() as session:
                assert await session.get(ApiKey, key.id) is not None
                assert await webhooks.rotate_secret(session, key.id, rotated, now=time.time(), overlap_s=3600)
        finally:
            await db.dispose()

    asyncio.run(rotate())
    with TestClient(create_app(settings, workers=0)) as client:
        task = create_task(client, key, receiver.url())
        cancel(client, key, task["id"])
        [request] = receiver.wait_for(1, timeout_s=10)
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    # A receiver that still has the old secret and one that already has the new one both verify it.
    assert Webhook(key.webhook_secret).verify(request.body, request.headers)["id"] == task["id"]
    assert Webhook(rotated).verify(request.body, request.headers)["id"] == task["id"]
