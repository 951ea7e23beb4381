"""Reconciliation (`reelgate credits audit`, `GET /admin/v1/audit`): proves from the database alone that the
cached balances are the sums of their entries and that every reserved task that ended was settled once, the
way its outcome says."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.accounts.ledger import EntryKind
from reelgate.db.models import Account, ApiKey, CreditEntry, Task
from reelgate.tasks.states import CreditsState, TaskStatus


@dataclass
class AuditReport:
    accounts: int = 0
    entries: int = 0
    tasks_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


_AMOUNT = CreditEntry.amount_millicredits
_BALANCE_DELTA = case(
    (CreditEntry.kind.in_([EntryKind.GRANT, EntryKind.ADJUST]), _AMOUNT),
    (CreditEntry.kind == EntryKind.CAPTURE, -_AMOUNT),
    else_=0,
)
_HELD_DELTA = case(
    (CreditEntry.kind == EntryKind.RESERVE, _AMOUNT),
    (CreditEntry.kind.in_([EntryKind.CAPTURE, EntryKind.RELEASE]), -_AMOUNT),
    else_=0,
)
# What a task's credits_state says its settlement entry must be.
_SETTLEMENT_FOR_STATE = {CreditsState.CAPTURED: EntryKind.CAPTURE, CreditsState.RELEASED: EntryKind.RELEASE}


async def audit(session: AsyncSession, *, account_id: str | None = None) -> AuditReport:
    report = AuditReport()
    await _check_balances(session, report, account_id)
    await _check_tasks(session, report, account_id)
    if account_id is None:
        orphans = await session.scalars(select(ApiKey.id).where(ApiKey.account_id.is_(None)))
        report.problems += [f"key {key_id}: belongs to no account" for key_id in orphans.all()]
    return report


async def _check_balances(session: AsyncSession, report: AuditReport, account_id: str | None) -> None:
    sums = (
        select(
            CreditEntry.account_id,
            func.coalesce(func.sum(_BALANCE_DELTA), 0).label("balance"),
            func.coalesce(func.sum(_HELD_DELTA), 0).label("held"),
            func.count().label("entries"),
        )
        .group_by(CreditEntry.account_id)
        .subquery()
    )
    query = select(Account, sums.c.balance, sums.c.held, sums.c.entries).outerjoin(
        sums, sums.c.account_id == Account.id
    )
    if account_id is not None:
        query = query.where(Account.id == account_id)
    for account, balance, held, entries in (await session.execute(query)).all():
        report.accounts += 1
        report.entries += int(entries or 0)
        balance, held = int(balance or 0), int(held or 0)
        if account.balance_millicredits != balance:
            report.problems.append(
                f"account {account.id}: cached balance {account.balance_millicredits} != sum of entries {balance}"
            )
        if account.held_millicredits != held:
            report.problems.append(
                f"account {account.id}: cached holds {account.held_millicredits} != sum of entries {held}"
            )
        if held < 0 or balance - held < 0:
            report.problems.append(f"account {account.id}: negative credit (balance {balance}, held {held})")


async def _check_tasks(session: AsyncSession, report: AuditReport, account_id: str | None) -> None:
    """Every reserved task: unfinished = held and unsettled; ended = settled once, by the matching kind and
    amount. Reads one row per reserved task with its settlement beside it."""
    reserve = select(CreditEntry).where(CreditEntry.kind == EntryKind.RESERVE).subquery("reserve")
    settlement = (
        select(CreditEntry).where(CreditEntry.kind.in_([EntryKind.CAPTURE, EntryKind.RELEASE])).subquery("settlement")
    )
    query = (
        select(
            reserve.c.task_id,
            reserve.c.amount_millicredits,
            Task.status,
            Task.credits_state,
            Task.credits_reserved_millicredits,
            settlement.c.kind,
            settlement.c.amount_millicredits,
        )
        .select_from(reserve)
        .outerjoin(Task, Task.id == reserve.c.task_id)
        .outerjoin(settlement, settlement.c.task_id == reserve.c.task_id)
    )
    if account_id is not None:
        query = query.where(reserve.c.account_id == account_id)
    seen: set[str] = set()
    for task_id, reserved, status, credits_state, task_price, settled_kind, settled in (
        await session.execute(query)
    ).all():
        report.tasks_checked += 1
        problem = _task_problem(status, credits_state, task_price, reserved, settled_kind, settled)
        if task_id in seen:
            problem = "settled more than once"
        seen.add(task_id)
        if problem:
            report.problems.append(f"task {task_id}: {problem}")
    report.tasks_checked = len(seen)


def _task_problem(
    status: str | None,
    credits_state: str | None,
    task_price: int | None,
    reserved: int,
    settled_kind: str | None,
    settled: int | None,
) -> str | None:
    if status is None:
        return "reserved but the task does not exist"
    if task_price != reserved:
        return f"reserved {reserved} but the task says {task_price}"
    if status in (TaskStatus.PENDING, TaskStatus.PROCESSING):
        if credits_state != CreditsState.HELD or settled_kind is not None:
            return f"unfinished ({status}) but its credits are {credits_state}, settlement {settled_kind}"
        return None
    expected = _SETTLEMENT_FOR_STATE.get(CreditsState(credits_state or CreditsState.HELD))
    if settled_kind is None:
        return f"{status} but never settled (reserved and ended without capture or release)"
    if expected is None or settled_kind != expected:
        return f"{status} with credits {credits_state} but settled by {settled_kind}"
    if settled != reserved:
        return f"settled {settled} of a hold of {reserved}"
    outcome_kind = EntryKind.CAPTURE if status == TaskStatus.COMPLETED else EntryKind.RELEASE
    if settled_kind != outcome_kind:
        return f"{status} but settled by {settled_kind}"
    return None
