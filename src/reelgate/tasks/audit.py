"""Reconciliation of the ledger with the tasks (`reelgate credits audit`, `GET /admin/v1/audit`): proves from
the database alone that the cached balances are the sums of their entries and that every reserved task that
ended was settled once, the way its outcome says."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.accounts.audit import AuditReport, TaskHold, check_balances, check_keys, task_holds
from reelgate.accounts.ledger import EntryKind
from reelgate.queue.states import UNFINISHED, CreditsState, TaskStatus
from reelgate.tasks import repository
from reelgate.tasks.repository import SettlementState

# What a task's credits_state says its settlement entry must be.
_SETTLEMENT_FOR_STATE = {CreditsState.CAPTURED: EntryKind.CAPTURE, CreditsState.RELEASED: EntryKind.RELEASE}

__all__ = ["AuditReport", "audit"]


async def audit(session: AsyncSession, *, account_id: str | None = None) -> AuditReport:
    report = AuditReport()
    await check_balances(session, report, account_id)
    holds = await task_holds(session, account_id)
    states = await repository.settlement_states(session, sorted({hold.task_id for hold in holds}))
    seen: set[str] = set()
    for hold in holds:
        problem = _task_problem(hold, states.get(hold.task_id))
        if hold.task_id in seen:
            problem = "settled more than once"
        seen.add(hold.task_id)
        if problem:
            report.problems.append(f"task {hold.task_id}: {problem}")
    report.tasks_checked = len(seen)
    if account_id is None:
        await check_keys(session, report)
    return report


def _task_problem(hold: TaskHold, task: SettlementState | None) -> str | None:
    """Every reserved task: unfinished = held and unsettled; ended = settled once, by the matching kind and
    amount."""
    if task is None:
        return "reserved but the task does not exist"
    reserved, settled_kind = hold.reserved_millicredits, hold.settled_kind
    if task.price_millicredits != reserved:
        return f"reserved {reserved} but the task says {task.price_millicredits}"
    if task.status in UNFINISHED:
        if task.credits_state != CreditsState.HELD or settled_kind is not None:
            return f"unfinished ({task.status}) but its credits are {task.credits_state}, settlement {settled_kind}"
        return None
    expected = _SETTLEMENT_FOR_STATE.get(CreditsState(task.credits_state or CreditsState.HELD))
    if settled_kind is None:
        return f"{task.status} but never settled (reserved and ended without capture or release)"
    if expected is None or settled_kind != expected:
        return f"{task.status} with credits {task.credits_state} but settled by {settled_kind}"
    if hold.settled_millicredits != reserved:
        return f"settled {hold.settled_millicredits} of a hold of {reserved}"
    outcome_kind = EntryKind.CAPTURE if task.status == TaskStatus.COMPLETED else EntryKind.RELEASE
    if settled_kind != outcome_kind:
        return f"{task.status} but settled by {settled_kind}"
    return None
