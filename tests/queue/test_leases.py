"""Claims, leases, fencing and compare-and-set terminal transitions, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from reelgate.accounts import repository as accounts
from reelgate.config import DEFAULT_MODEL, Settings
from reelgate.db.models import Account, ApiKey
from reelgate.engines.registry import Route
from reelgate.errors import TaskErrorCode
from reelgate.queue import repository as queue_repo
from reelgate.queue import terminal
from reelgate.queue.repository import Fence
from reelgate.queue.states import TaskStatus
from reelgate.resources import database_for
from reelgate.tasks import repository as task_repo
from reelgate.tasks import service
from reelgate.tasks.schemas import CreateVideoRequest
from reelgate.tasks.settlement import task_ended
from tests.conftest import Backend, create_key, make_settings, migrate_db

ROUTE = Route(model=DEFAULT_MODEL, engine="motion", estimate_s=3)
REQUEST = CreateVideoRequest(model=DEFAULT_MODEL, prompt="zoom in", image_urls=["https://example.com/a.png"])


def setup(tmp_path: Path, backend: Backend, **overrides: Any) -> tuple[Settings, str]:
    settings = make_settings(tmp_path / "home", backend, **overrides)
    migrate_db(settings)
    key = create_key(settings, credits=100)
    return settings, key.split("_")[1]


async def _key(session: Any, key_id: str) -> ApiKey:
    row = await accounts.get_key(session, key_id)
    assert row is not None
    return row


async def _owner(session: Any, key_id: str) -> dict[str, Any]:
    """What create_task takes of a task's owner: its key and the key's account's group."""
    return {"key": await _key(session, key_id), "user_group": (await _account(session, key_id)).user_group}


async def _account(session: Any, key_id: str) -> Account:
    """The key's account; `available` = balance - held is what the old per-key balance was."""
    key = await _key(session, key_id)
    account = await accounts.get_account(session, key.account_id or "")
    assert account is not None
    return account


async def _available(session: Any, key_id: str) -> int:
    account = await _account(session, key_id)
    return account.balance_millicredits - account.held_millicredits


async def _create(settings: Settings, key_id: str, count: int = 1) -> list[str]:
    db = database_for(settings)
    ids = []
    try:
        for _ in range(count):
            async with db.read() as session:
                owner = await _owner(session, key_id)
            async with db.driver_transaction() as transaction:
                task = await service.create_task(transaction, settings, **owner, request=REQUEST, route=ROUTE)
                ids.append(task.id)
    finally:
        await db.dispose()
    return ids


def test_claim_fence_and_stale_writer(tmp_path: Path, backend: Backend) -> None:
    settings, key_id = setup(tmp_path, backend)

    async def scenario() -> None:
        [task_id] = await _create(settings, key_id)
        db = database_for(settings)
        try:
            async with db.transaction() as session:
                first = await queue_repo.claim(session, engines=["motion"], owner="A", lease_s=30, now=1e10)
            assert first is not None and first.id == task_id and first.attempt == 1
            async with db.transaction() as session:
                assert await queue_repo.claim(session, engines=["motion"], owner="B", lease_s=30, now=1e10) is None
                # A worker of another engine never sees it.
                assert await queue_repo.claim(session, engines=["wan"], owner="C", lease_s=30, now=1e10) is None
            # A's lease runs out; recovery requeues, B claims attempt 2.
            async with db.transaction() as session:
                assert await queue_repo.requeue_expired(session, now=1e10 + 31) == [task_id]
                second = await queue_repo.claim(session, engines=["motion"], owner="B", lease_s=30, now=1e10 + 31)
            assert second is not None and second.attempt == 2
            stale, fresh = Fence(1, "A"), Fence(2, "B")
            async with db.transaction() as session:
                assert not await queue_repo.heartbeat(
                    session, task_id, stale, lease_s=30, progress=50, estimated_time_s=1, now=1e10 + 32
                )
                assert (
                    await queue_repo.mark_completed(
                        session, task_id, fence=stale, result_key="x.mp4", result_info={}, now=1e10 + 32
                    )
                    is None
                )
                task = await task_repo.get_task(session, task_id)
                assert task is not None
                assert (
                    await terminal.fail(
                        session,
                        task_ended,
                        task.id,
                        code=TaskErrorCode.SERVICE_ERROR,
                        message="stale",
                        from_statuses=(TaskStatus.PROCESSING,),
                        fence=stale,
                    )
                    is None
                )
                assert await queue_repo.heartbeat(
                    session, task_id, fresh, lease_s=30, progress=50, estimated_time_s=1, now=1e10 + 32
                )
                done = await queue_repo.mark_completed(
                    session, task_id, fence=fresh, result_key="y.mp4", result_info={}, now=1e10 + 33
                )
                assert done is not None and done.status == "completed" and done.credits_state == "captured"
            async with db.read() as session:
                task = await task_repo.get_task(session, task_id)
                assert task is not None and task.result_key == "y.mp4" and task.progress == 100
                assert await _available(session, key_id) == 95_000
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_cancel_and_finish_race_has_one_winner(tmp_path: Path, backend: Backend) -> None:
    settings, key_id = setup(tmp_path, backend)

    async def scenario() -> None:
        [task_id] = await _create(settings, key_id)
        db = database_for(settings)
        try:
            async with db.transaction() as session:
                claimed = await queue_repo.claim(session, engines=["motion"], owner="A", lease_s=30, now=1e10)
            assert claimed is not None

            async def cancel() -> bool:
                async with db.transaction() as session:
                    task = await task_repo.get_task(session, task_id)
                    assert task is not None
                    return (
                        await terminal.fail(
                            session,
                            task_ended,
                            task.id,
                            code=TaskErrorCode.REQUEST_CANCELLED,
                            message="cancelled",
                            from_statuses=(TaskStatus.PENDING, TaskStatus.PROCESSING),
                        )
                        is not None
                    )

            async def complete() -> bool:
                async with db.transaction() as session:
                    return (
                        await queue_repo.mark_completed(
                            session, task_id, fence=Fence(1, "A"), result_key="k.mp4", result_info={}, now=1e10 + 1
                        )
                        is not None
                    )

            results = await asyncio.gather(cancel(), complete())
            assert sorted(results) == [False, True]
            async with db.read() as session:
                balance = await _available(session, key_id)
                task = await task_repo.get_task(session, task_id)
            assert task is not None
            # Settled exactly once: refunded if the cancel won, kept if the completion won.
            assert balance == (100_000 if task.status == "failed" else 95_000)
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_concurrent_claimers_never_share_a_task(tmp_path: Path, backend: Backend) -> None:
    settings, key_id = setup(tmp_path, backend)

    async def scenario() -> None:
        ids = await _create(settings, key_id, count=12)
        db = database_for(settings)
        try:

            async def claimer(name: str) -> list[str]:
                got = []
                while True:
                    async with db.transaction() as session:
                        task = await queue_repo.claim(session, engines=["motion"], owner=name, lease_s=30, now=1e10)
                    if task is None:
                        return got
                    got.append(task.id)

            claimed = await asyncio.gather(*(claimer(f"w{i}") for i in range(4)))
            flat = [task_id for batch in claimed for task_id in batch]
            assert sorted(flat) == sorted(ids)
            assert len(set(flat)) == len(flat)
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_exhausted_attempts_fail_and_refund(tmp_path: Path, backend: Backend) -> None:
    settings, key_id = setup(tmp_path, backend, max_attempts=2)

    async def scenario() -> None:
        [task_id] = await _create(settings, key_id)
        db = database_for(settings)
        try:
            now = 1e10
            for owner in ("A", "B"):
                async with db.transaction() as session:
                    assert await queue_repo.claim(session, engines=["motion"], owner=owner, lease_s=30, now=now)
                now += 31
                async with db.transaction() as session:
                    await queue_repo.requeue_expired(session, now=now)
            async with db.transaction() as session:
                exhausted = await queue_repo.expired_without_attempts(session, now=now)
                assert [task.id for task in exhausted] == [task_id]
                task = exhausted[0]
                assert await terminal.fail(
                    session,
                    task_ended,
                    task.id,
                    code=TaskErrorCode.SERVICE_ERROR,
                    message="gone",
                    from_statuses=(TaskStatus.PROCESSING,),
                    fence=Fence(task.attempt, task.lease_owner or ""),
                )
            async with db.read() as session:
                task = await task_repo.get_task(session, task_id)
                assert task is not None and task.status == "failed" and task.credits_state == "released"
                assert await _available(session, key_id) == 100_000
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_reserve_never_goes_negative_under_concurrency(tmp_path: Path, backend: Backend) -> None:
    settings, key_id = setup(tmp_path, backend)  # 100 credits = 20 tasks of 5 s

    async def scenario() -> None:
        db = database_for(settings)
        try:

            async def one() -> bool:
                try:
                    async with db.read() as session:
                        owner = await _owner(session, key_id)
                    async with db.driver_transaction() as transaction:
                        await service.create_task(transaction, settings, **owner, request=REQUEST, route=ROUTE)
                    return True
                except Exception as exc:
                    assert getattr(exc, "status", None) == 402
                    return False

            results = await asyncio.gather(*(one() for _ in range(30)))
            assert results.count(True) == 20
            async with db.read() as session:
                assert await _available(session, key_id) == 0
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_cancel_judged_before_a_submit_left_does_not_win_after_it(tmp_path: Path, backend: Backend) -> None:
    """A cancel reads the task while nothing was sent upstream (can_cancel true); a relay worker then records
    its submit. The cancel's compare-and-set must lose: the upstream cannot be stopped any more."""
    from reelgate.engines.relay.base import UpstreamRecord, UpstreamState

    settings, key_id = setup(tmp_path, backend)

    async def scenario() -> None:
        [task_id] = await _create(settings, key_id)
        db = database_for(settings)
        try:
            async with db.transaction() as session:
                claimed = await queue_repo.claim(session, engines=["motion"], owner="A", lease_s=30, now=1e10)
            assert claimed is not None
            async with db.read() as session:
                seen_by_cancel = await task_repo.get_task(session, task_id)
            assert seen_by_cancel is not None and service.can_cancel(seen_by_cancel)
            record = UpstreamRecord(provider="kling", task_id=None, state=UpstreamState.SUBMITTING, submitted_at=1e10)
            async with db.transaction() as session:
                assert await queue_repo.record_upstream(session, task_id, Fence(1, "A"), record, now=1e10)
            async with db.transaction() as session:
                lost = await terminal.fail(
                    session,
                    task_ended,
                    seen_by_cancel.id,
                    code=TaskErrorCode.REQUEST_CANCELLED,
                    message="cancelled",
                    from_statuses=(TaskStatus.PENDING, TaskStatus.PROCESSING),
                    as_seen=seen_by_cancel,
                )
            assert lost is None
            async with db.read() as session:
                task = await task_repo.get_task(session, task_id)
            assert task is not None and task.status == "processing" and task.credits_state == "held"
        finally:
            await db.dispose()

    asyncio.run(scenario())
