"""The credit ledger: every change of an account's money is one appended entry plus one conditional UPDATE of
the account's cached balance and holds, in the caller's transaction (so the cache never disagrees with the sum
of entries that committed with it).

reserve: held += amount, only while balance - held >= amount (one conditional UPDATE: concurrent creates on
         one account can never push spendable credit below zero, whatever their number).
capture: balance -= amount, held -= amount (the hold becomes a charge).
release: held -= amount (the hold is given back).
grant:   balance += amount.   adjust: balance += signed amount, only while balance + amount >= held.
A task has at most one reserve and at most one settlement (capture or release): `dedupe_key` is unique.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.db.driver import Statement
from reelgate.db.models import Account, CreditEntry


class EntryKind(StrEnum):
    GRANT = "grant"
    RESERVE = "reserve"
    CAPTURE = "capture"
    RELEASE = "release"
    ADJUST = "adjust"


SETTLEMENTS = (EntryKind.CAPTURE, EntryKind.RELEASE)


def reserve_key(task_id: str) -> str:
    return f"reserve:{task_id}"


def settle_key(task_id: str) -> str:
    return f"settle:{task_id}"


# One statement object, its values passed as parameters: compiled once and found by a memoized cache key.
_INSERT_ENTRY = insert(cast(Table, CreditEntry.__table__))
_ENTRY_COLUMNS = ("account_id", "kind", "amount_millicredits", "task_id", "dedupe_key", "note", "created_at")
# The reserve runs in a create's driver transaction (db/driver.py): fixed statements, compiled once.
_INSERT_ENTRY_STATEMENT = Statement(_INSERT_ENTRY.inline(), column_keys=_ENTRY_COLUMNS)
_ACCOUNTS = cast(Table, Account.__table__)
_RESERVE = Statement(
    update(_ACCOUNTS)
    .where(
        _ACCOUNTS.c.id == bindparam("account"),
        _ACCOUNTS.c.balance_millicredits - _ACCOUNTS.c.held_millicredits >= bindparam("amount"),
    )
    .values(held_millicredits=_ACCOUNTS.c.held_millicredits + bindparam("amount"))
)


def _entry_values(
    account_id: str,
    kind: EntryKind,
    amount_millicredits: int,
    task_id: str | None,
    dedupe_key: str | None,
    note: str | None,
) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "kind": str(kind),
        "amount_millicredits": amount_millicredits,
        "task_id": task_id,
        "dedupe_key": dedupe_key,
        "note": note,
        "created_at": time.time(),
    }


async def _entry(
    session: AsyncSession,
    account_id: str,
    kind: EntryKind,
    amount_millicredits: int,
    *,
    task_id: str | None = None,
    dedupe_key: str | None = None,
    note: str | None = None,
) -> None:
    # A Core insert, written now: the ORM's unit of work (an object, then a flush) cost a create more than the
    # statement (docs/benchmarks.md, the profile). A second reserve or settlement of a task fails here, on the
    # unique `dedupe_key`, and takes its whole transaction with it.
    await session.execute(
        _INSERT_ENTRY, _entry_values(account_id, kind, amount_millicredits, task_id, dedupe_key, note)
    )


# A reserve, as two members of the create's batch (db/driver.py `Batch`): the entry, then the account's
# conditional UPDATE, whose changed-row count (0 or 1) says whether the hold was made. If it was not, the
# caller must roll its transaction back, taking the entry with it.
RESERVE_MEMBERS = (_INSERT_ENTRY_STATEMENT, _RESERVE)


def reserve_params(account_id: str, task_id: str, amount_millicredits: int) -> list[dict[str, Any]]:
    """The parameters of `RESERVE_MEMBERS`, in order: hold `amount` for the task if the account can spend it."""
    return [
        _entry_values(account_id, EntryKind.RESERVE, amount_millicredits, task_id, reserve_key(task_id), None),
        {"account": account_id, "amount": amount_millicredits},
    ]


async def settle(session: AsyncSession, task_id: str, kind: EntryKind) -> None:
    """Capture or release the task's hold. A second settlement of one task fails on the unique constraint,
    which rolls back the whole terminal transaction: a task is never charged or refunded twice."""
    if kind not in SETTLEMENTS:
        raise ValueError(f"not a settlement: {kind}")
    hold = await session.scalar(select(CreditEntry).where(CreditEntry.dedupe_key == reserve_key(task_id)))
    if hold is None:
        # Every task since the ledger has a reserve (a price of 0 too); only a task that ended before the
        # ledger existed has none, and there is nothing to settle for it.
        return
    amount = hold.amount_millicredits
    values = {"held_millicredits": Account.held_millicredits - amount}
    if kind == EntryKind.CAPTURE:
        values["balance_millicredits"] = Account.balance_millicredits - amount
    await session.execute(update(Account).where(Account.id == hold.account_id).values(**values))
    await _entry(session, hold.account_id, kind, amount, task_id=task_id, dedupe_key=settle_key(task_id))
    await session.flush()


async def grant(session: AsyncSession, account_id: str, amount_millicredits: int, *, note: str | None = None) -> bool:
    if amount_millicredits <= 0:
        raise ValueError("a grant must be positive")
    result = await session.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(balance_millicredits=Account.balance_millicredits + amount_millicredits)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    await _entry(session, account_id, EntryKind.GRANT, amount_millicredits, note=note)
    await session.flush()
    return True


async def adjust(session: AsyncSession, account_id: str, amount_millicredits: int, *, note: str | None = None) -> bool:
    """A signed correction; refused (False) where it would leave less than the account holds for its tasks."""
    result = await session.execute(
        update(Account)
        .where(
            Account.id == account_id,
            Account.balance_millicredits + amount_millicredits >= Account.held_millicredits,
        )
        .values(balance_millicredits=Account.balance_millicredits + amount_millicredits)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    await _entry(session, account_id, EntryKind.ADJUST, amount_millicredits, note=note)
    await session.flush()
    return True


async def entries(session: AsyncSession, account_id: str, *, limit: int = 100) -> list[CreditEntry]:
    rows = await session.scalars(
        select(CreditEntry).where(CreditEntry.account_id == account_id).order_by(CreditEntry.id.desc()).limit(limit)
    )
    return list(rows.all())


async def task_entries(session: AsyncSession, task_id: str) -> list[CreditEntry]:
    """The task's reserve and its settlement, oldest first (at most two rows: `dedupe_key` is unique)."""
    rows = await session.scalars(select(CreditEntry).where(CreditEntry.task_id == task_id).order_by(CreditEntry.id))
    return list(rows.all())


async def task_movements_since(session: AsyncSession, account_id: str, since: float) -> list[tuple[str, int, float]]:
    """(kind, amount, created_at) of the account's reserves and settlements since `since`, for usage per day.
    Bucketed by the caller: day arithmetic on a float column differs between SQLite and PostgreSQL (a cast
    truncates on one and rounds on the other), and 30 days of one account's entries is a modest read."""
    rows = await session.execute(
        select(CreditEntry.kind, CreditEntry.amount_millicredits, CreditEntry.created_at).where(
            CreditEntry.account_id == account_id,
            CreditEntry.created_at >= since,
            CreditEntry.kind.in_([EntryKind.RESERVE, EntryKind.CAPTURE, EntryKind.RELEASE]),
        )
    )
    return [(kind, amount, created) for kind, amount, created in rows.all()]
