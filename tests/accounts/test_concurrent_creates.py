"""100 concurrent creates against an account that can pay for 37: exactly 37 tasks, 63 answers of 402, nothing
left, audit clean. And 100 concurrent creates on a key that may have 7 unfinished tasks: exactly 7, 93 answers
of 429, only their credits held. In one process on SQLite and PostgreSQL, and across two `reelgate serve`
processes on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from reelgate.accounts.repository import KeyLimits
from reelgate.db.models import Task
from tests.accounts.harness import Harness, create_body, harness
from tests.conftest import Backend, advertise_worker, auth, make_settings, migrate_db, settings_env
from tests.e2e.processes import Processes, start_api_processes

CREATES = 100
AFFORDABLE = 37
UNFINISHED_LIMIT = 7
PRICE_CREDITS = 5  # duration 5 at the built-in 1 credit per second


def _task_count(h: Harness, key: str) -> int:
    from sqlalchemy import func, select

    async def work() -> int:
        async with h.resources.db.read() as session:
            query = select(func.count()).select_from(Task).where(Task.api_key_id == key.split("_")[1])
            return int(await session.scalar(query) or 0)

    return h.call(work)


async def _fire(base_urls: list[str], key: str, transport: httpx.AsyncBaseTransport | None = None) -> Counter[int]:
    async with httpx.AsyncClient(transport=transport, timeout=60) as client:

        async def one(index: int) -> int:
            base = base_urls[index % len(base_urls)]
            response = await client.post(f"{base}/v1/videos/generations", json=create_body(), headers=auth(key))
            if response.status_code == 402:
                assert response.json()["error"]["type"] == "insufficient_quota_error"
            if response.status_code == 429:
                assert response.json()["error"]["message"].startswith("Too many unfinished tasks")
            return response.status_code

        return Counter(await asyncio.gather(*(one(i) for i in range(CREATES))))


def _check(h: Harness, key: str, account_id: str, statuses: Counter[int]) -> None:
    assert statuses == Counter({200: AFFORDABLE, 402: CREATES - AFFORDABLE})
    assert _task_count(h, key) == AFFORDABLE
    account = h.account(account_id)
    assert account.balance_millicredits == AFFORDABLE * PRICE_CREDITS * 1000
    assert account.balance_millicredits - account.held_millicredits == 0
    report = h.audit()
    assert report.ok, report.problems
    assert report.tasks_checked == AFFORDABLE


def _check_limited(h: Harness, key: str, account_id: str, statuses: Counter[int]) -> None:
    # The key's row is locked before the batch that counts its unfinished tasks and inserts one (db/driver.py
    # `Batch`): a create waiting for that lock counts what the one before it committed.
    assert statuses == Counter({200: UNFINISHED_LIMIT, 429: CREATES - UNFINISHED_LIMIT})
    assert _task_count(h, key) == UNFINISHED_LIMIT
    account = h.account(account_id)
    assert account.held_millicredits == UNFINISHED_LIMIT * PRICE_CREDITS * 1000
    report = h.audit()
    assert report.ok, report.problems


@dataclass(frozen=True)
class Case:
    """What the key may spend or have unfinished, and what 100 concurrent creates must then leave."""

    credits: float
    limits: KeyLimits | None
    check: Callable[[Harness, str, str, Counter[int]], None]


CASES = {
    "37-affordable": Case(AFFORDABLE * PRICE_CREDITS, None, _check),
    "7-unfinished": Case(
        CREATES * PRICE_CREDITS, KeyLimits(max_concurrent=UNFINISHED_LIMIT, rpm_limit=10 * CREATES), _check_limited
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_100_concurrent_creates_in_one_process(tmp_path: Path, backend: Backend, case: Case) -> None:
    settings = make_settings(tmp_path / "home", backend)
    migrate_db(settings)
    with harness(settings) as h:
        key, account_id = h.new_key(credits=case.credits, limits=case.limits)
        app = h.client.app
        statuses = h.call(lambda: _fire(["http://app"], key, httpx.ASGITransport(app=app)))  # type: ignore[arg-type]
        case.check(h, key, account_id, statuses)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_100_concurrent_creates_across_two_processes(
    tmp_path: Path, postgres_backend: Backend, processes: Processes, case: Case
) -> None:
    settings = make_settings(tmp_path / "home", postgres_backend)
    migrate_db(settings)
    # The worker these API-only servers route to (its advert stands for one that claims nothing).
    advertise_worker(settings)
    bases = start_api_processes(processes, settings_env(settings))
    with harness(settings) as h:
        key, account_id = h.new_key(credits=case.credits, limits=case.limits)
        statuses = asyncio.run(_fire(bases, key))
        case.check(h, key, account_id, statuses)
