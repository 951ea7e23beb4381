"""The ledger's half of the reconciliation (`reelgate credits audit`, `GET /admin/v1/audit`): cached balances
are the sums of their entries, no credit is negative, every key has an account, and, for the tasks package
to check against its own rows, what the ledger says each task reserved and how it was settled
(tasks/audit.py runs the whole audit)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.accounts.ledger import EntryKind
from reelgate.db.models import Account, ApiKey, CreditEntry


@dataclass
class AuditReport:
    accounts: int = 0
    entries: int = 0
    tasks_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class TaskHold:
    """A task's reserve entry and its settlement, if any (one row per settlement: two rows = settled twice)."""

    task_id: str
    reserved_millicredits: int
    settled_kind: str | None
    settled_millicredits: int | None


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


async def check_balances(session: AsyncSession, report: AuditReport, account_id: str | None) -> None:
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


async def check_keys(session: AsyncSession, report: AuditReport) -> None:
    orphans = await session.scalars(select(ApiKey.id).where(ApiKey.account_id.is_(None)))
    report.problems += [f"key {key_id}: belongs to no account" for key_id in orphans.all()]


async def task_holds(session: AsyncSession, account_id: str | None) -> list[TaskHold]:
    reserve = select(CreditEntry).where(CreditEntry.kind == EntryKind.RESERVE).subquery("reserve")
    settlement = (
        select(CreditEntry).where(CreditEntry.kind.in_([EntryKind.CAPTURE, EntryKind.RELEASE])).subquery("settlement")
    )
    query = (
        select(reserve.c.task_id, reserve.c.amount_millicredits, settlement.c.kind, settlement.c.amount_millicredits)
        .select_from(reserve)
        .outerjoin(settlement, settlement.c.task_id == reserve.c.task_id)
    )
    if account_id is not None:
        query = query.where(reserve.c.account_id == account_id)
    return [
        TaskHold(task_id, int(reserved), kind, None if settled is None else int(settled))
        for task_id, reserved, kind, settled in (await session.execute(query)).all()
    ]
