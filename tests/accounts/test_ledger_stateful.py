"""Hypothesis drives random sequences of create (with and without Idempotency-Key), retry with the same key,
claim, complete, fail, cancel, worker crash (lease expiry: requeue, or fail once out of attempts) and grant,
and checks after every step that the ledger explains the account exactly: cached balance and holds = sums of
entries, held = the prices of the unfinished tasks, balance = grants - captures, never negative, every ended
task settled once. On SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from reelgate.accounts import service as accounts
from reelgate.errors import TaskErrorCode
from reelgate.queue import repository as queue_repo
from reelgate.queue import terminal
from reelgate.queue.recovery import recover_expired
from reelgate.queue.repository import Fence
from reelgate.queue.states import UNFINISHED, TaskStatus
from reelgate.tasks.settlement import task_ended
from tests.accounts.harness import Harness, create_body, harness
from tests.conftest import Backend, auth, make_settings, migrate_db

START_CREDITS = 30
MAX_ATTEMPTS = 2


@dataclass
class ModelTask:
    price: int
    status: str = "pending"
    fence: Fence | None = None


def machine_for(h: Harness) -> type[RuleBasedStateMachine]:
    # The workers' clock: a crash moves it past the lease, and later claims live in that later time (a requeued
    # task is available from the moment it was requeued). Shared by all examples, so it only moves forward.
    clock = [time.time()]

    class Ledger(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.key, self.account_id = h.new_key(credits=START_CREDITS)
            self.granted = START_CREDITS * 1000
            self.captured = 0
            self.tasks: dict[str, ModelTask] = {}
            self.idempotent: dict[str, tuple[dict[str, object], str]] = {}

        # --- the API ---------------------------------------------------------------------------------
        @rule(duration=st.sampled_from([5, 10]), with_key=st.booleans())
        def create(self, duration: int, with_key: bool) -> None:
            body = create_body(duration)
            headers = auth(self.key)
            idem = uuid.uuid4().hex if with_key else None
            if idem:
                headers["Idempotency-Key"] = idem
            response = h.client.post("/v1/videos/generations", json=body, headers=headers)
            price = duration * 1000
            if self.available() >= price:
                assert response.status_code == 200, response.text
                task = response.json()
                assert task["usage"]["credits_reserved"] == duration
                self.tasks[task["id"]] = ModelTask(price=price)
                if idem:
                    self.idempotent[idem] = (body, task["id"])
            else:
                assert response.status_code == 402, response.text

        @precondition(lambda self: self.idempotent)
        @rule(data=st.data(), same_body=st.booleans())
        def retry(self, data: st.DataObject, same_body: bool) -> None:
            idem = data.draw(st.sampled_from(list(self.idempotent)))
            body, task_id = self.idempotent[idem]
            sent = body if same_body else {**body, "prompt": "another prompt"}
            headers = {**auth(self.key), "Idempotency-Key": idem}
            response = h.client.post("/v1/videos/generations", json=sent, headers=headers)
            if same_body:
                assert response.status_code == 200 and response.json()["id"] == task_id, response.text
            else:
                assert response.status_code == 422, response.text
                assert response.json()["error"]["type"] == "invalid_request_error"

        @precondition(lambda self: self.unfinished())
        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            task_id = data.draw(st.sampled_from(self.unfinished()))
            response = h.client.post(f"/v1/tasks/{task_id}/cancel", headers=auth(self.key))
            assert response.status_code == 200, response.text
            self.tasks[task_id].status = "failed"

        @rule(credits=st.integers(min_value=1, max_value=20))
        def grant(self, credits: int) -> None:
            async def work() -> None:
                async with h.resources.db.transaction() as session:
                    await accounts.grant(session, self.account_id, credits * 1000, note="stateful")

            h.call(work)
            self.granted += credits * 1000

        # --- a worker --------------------------------------------------------------------------------
        @precondition(lambda self: self.with_status("pending"))
        @rule()
        def claim(self) -> None:
            async def work() -> tuple[str, int] | None:
                async with h.resources.db.transaction() as session:
                    task = await queue_repo.claim(
                        session, engines=["motion"], owner="W", lease_s=30, now=max(clock[0], time.time())
                    )
                    return (task.id, task.attempt) if task else None

            claimed = h.call(work)
            assert claimed is not None
            task_id, attempt = claimed
            self.tasks[task_id].status = "processing"
            self.tasks[task_id].fence = Fence(attempt, "W")

        @precondition(lambda self: self.with_status("processing"))
        @rule(data=st.data(), succeed=st.booleans())
        def finish(self, data: st.DataObject, succeed: bool) -> None:
            task_id = data.draw(st.sampled_from(self.with_status("processing")))
            fence = self.tasks[task_id].fence
            assert fence is not None

            async def work() -> bool:
                async with h.resources.db.transaction() as session:
                    if succeed:
                        won = await terminal.complete(
                            session, task_ended, task_id, fence=fence, result_key="x.mp4", result_info={}
                        )
                        return won is not None
                    failed = await terminal.fail(
                        session,
                        task_ended,
                        task_id,
                        code=TaskErrorCode.SERVICE_ERROR,
                        message="engine failed",
                        from_statuses=(TaskStatus.PROCESSING,),
                        fence=fence,
                    )
                    return failed is not None

            assert h.call(work)
            self.tasks[task_id].status = "completed" if succeed else "failed"
            if succeed:
                self.captured += self.tasks[task_id].price

        @precondition(lambda self: self.with_status("processing"))
        @rule()
        def worker_crash(self) -> None:
            """Every processing task's lease runs out: requeued, or failed once out of attempts."""

            clock[0] = max(clock[0], time.time()) + 31

            async def work() -> None:
                async with h.resources.db.transaction() as session:
                    await recover_expired(session, task_ended, now=clock[0])

            h.call(work)
            for task in self.tasks.values():
                if task.status == "processing":
                    assert task.fence is not None
                    task.status = "pending" if task.fence.attempt < MAX_ATTEMPTS else "failed"

        # --- checks ----------------------------------------------------------------------------------
        # In the order the tasks were created, never sorted by id: ids and Idempotency-Keys are random, and
        # Hypothesis needs the same draws to pick the same task in every run of a sequence (a sorted list of
        # random ids made a draw pick another task the next time: FlakyStrategyDefinition).
        def unfinished(self) -> list[str]:
            return [t for t, task in self.tasks.items() if task.status in UNFINISHED]

        def with_status(self, status: str) -> list[str]:
            return [t for t, task in self.tasks.items() if task.status == status]

        def held(self) -> int:
            return sum(task.price for task in self.tasks.values() if task.status in UNFINISHED)

        def available(self) -> int:
            return self.granted - self.captured - self.held()

        @invariant()
        def ledger_explains_the_account(self) -> None:
            report = h.audit(self.account_id)
            assert report.ok, report.problems
            account = h.account(self.account_id)
            assert account.balance_millicredits == self.granted - self.captured
            assert account.held_millicredits == self.held()
            assert account.balance_millicredits - account.held_millicredits >= 0

        def teardown(self) -> None:
            # End what is left, so the next example's claims see only their own tasks.
            for task_id in self.unfinished():
                assert h.client.post(f"/v1/tasks/{task_id}/cancel", headers=auth(self.key)).status_code == 200
            report = h.audit()
            assert report.ok, report.problems

    return Ledger


def test_ledger_invariants_hold_under_random_sequences(tmp_path: Path, backend: Backend) -> None:
    settings = make_settings(tmp_path / "home", backend, max_attempts=MAX_ATTEMPTS)
    migrate_db(settings)
    with harness(settings) as h:
        run_state_machine_as_test(
            machine_for(h),
            settings=hypothesis_settings(
                max_examples=12,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
