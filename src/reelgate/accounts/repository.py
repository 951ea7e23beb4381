"""SQL for accounts and API keys. Money moves only through `ledger.py`. Callers own the transaction."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.accounts.keys import NewCredential, NewKey
from reelgate.accounts.records import AccountRecord, KeyRecord
from reelgate.db.database import Database
from reelgate.db.driver import Statement, Transaction
from reelgate.db.models import Account, ApiKey, ApiKeyChanges, WorkerToken
from reelgate.webhooks import repository as webhooks


@dataclass(frozen=True)
class KeyLimits:
    """What a key may do; None = everything / inherit the group's limit."""

    allowed_models: list[str] | None = None
    rpm_limit: int | None = None
    max_concurrent: int | None = None
    expires_at: float | None = None
    read_rpm_limit: int | None = None


def new_account_id() -> str:
    return "acct_" + secrets.token_hex(6)


async def insert_account(session: AsyncSession, *, name: str, user_group: str) -> Account:
    row = Account(
        id=new_account_id(),
        name=name,
        user_group=user_group,
        balance_millicredits=0,
        held_millicredits=0,
        created_at=time.time(),
    )
    session.add(row)
    await session.flush()
    return row


async def get_account(session: AsyncSession, account_id: str, *, for_update: bool = False) -> Account | None:
    return await session.get(Account, account_id, populate_existing=True, with_for_update=for_update or None)


async def list_accounts(session: AsyncSession) -> list[Account]:
    return list((await session.scalars(select(Account).order_by(Account.created_at, Account.id))).all())


async def insert_key(
    session: AsyncSession, new_key: NewKey, *, name: str, account_id: str, limits: KeyLimits | None = None
) -> ApiKey:
    now = time.time()
    limits = limits or KeyLimits()
    row = ApiKey(
        id=new_key.key_id,
        name=name,
        secret_hash=new_key.secret_hash,
        created_at=now,
        revoked_at=None,
        account_id=account_id,
        allowed_models=limits.allowed_models,
        rpm_limit=limits.rpm_limit,
        read_rpm_limit=limits.read_rpm_limit,
        max_concurrent=limits.max_concurrent,
        expires_at=limits.expires_at,
    )
    session.add(row)
    await session.flush()
    await webhooks.insert_secret(session, new_key.key_id, new_key.webhook_secret, now=now)
    return row


async def get_key(session: AsyncSession, key_id: str) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def get_key_with_account(session: AsyncSession, key_id: str) -> tuple[ApiKey, Account] | None:
    row = (
        await session.execute(
            select(ApiKey, Account).join(Account, Account.id == ApiKey.account_id).where(ApiKey.id == key_id)
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


_KEY_COLUMNS = (
    ApiKey.id,
    ApiKey.name,
    ApiKey.secret_hash,
    ApiKey.account_id,
    ApiKey.allowed_models,
    ApiKey.rpm_limit,
    ApiKey.read_rpm_limit,
    ApiKey.max_concurrent,
    ApiKey.expires_at,
    ApiKey.revoked_at,
    ApiKey.created_at,
    Account.name,
    Account.user_group,
    Account.created_at,
)
# Built and compiled once (db/driver.py), with bound parameters.
_KEY_READ = Statement(
    select(*_KEY_COLUMNS).join(Account, Account.id == ApiKey.account_id).where(ApiKey.id == bindparam("key_id"))
)
_VERSION_READ = Statement(select(ApiKeyChanges.version).where(ApiKeyChanges.id == 1))


async def key_record(db: Database, key_id: str) -> tuple[KeyRecord, AccountRecord] | None:
    """The key and its account in one statement of its own (db/driver.py)."""
    row = await db.point_read(_KEY_READ, {"key_id": key_id})
    if row is None:
        return None
    values: tuple[Any, ...] = tuple(row)
    (kid, name, secret_hash, account_id, models, rpm, read_rpm, concurrent, expires, revoked, created) = values[:11]
    key = KeyRecord(
        id=kid,
        name=name,
        secret_hash=secret_hash,
        account_id=account_id,
        allowed_models=tuple(models) if models is not None else None,
        rpm_limit=rpm,
        read_rpm_limit=read_rpm,
        max_concurrent=concurrent,
        expires_at=expires,
        revoked_at=revoked,
        created_at=created,
    )
    account_name, user_group, account_created = values[11:]
    return key, AccountRecord(id=account_id or "", name=account_name, user_group=user_group, created_at=account_created)


async def keys_version(db: Database) -> int:
    """The change counter of the keys (`ApiKeyChanges`)."""
    row = await db.point_read(_VERSION_READ, {})
    if row is None:
        raise RuntimeError("the api_key_changes row is missing: run 'reelgate migrate'")
    return int(row[0])


async def keys_changed(session: AsyncSession) -> None:
    """Every write that can make a cached key wrong (revoked, its limits or models changed, its account's group
    changed) calls this in its transaction: every API process forgets its cached keys within half a second of
    the commit (accounts/key_cache.py)."""
    await session.execute(update(ApiKeyChanges).where(ApiKeyChanges.id == 1).values(version=ApiKeyChanges.version + 1))


async def list_keys(session: AsyncSession, *, account_id: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if account_id is not None:
        query = query.where(ApiKey.account_id == account_id)
    return list((await session.scalars(query)).all())


async def count_active_keys(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None))) or 0)


async def revoke_key(session: AsyncSession, key_id: str) -> bool:
    result = await session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=time.time())
    )
    revoked = bool(result.rowcount)  # type: ignore[attr-defined]
    if revoked:
        await keys_changed(session)
    return revoked


_LOCK_KEY = Statement(select(ApiKey.id).where(ApiKey.id == bindparam("key_id")).with_for_update())
_ACCOUNT_MONEY = Statement(
    select(Account.balance_millicredits, Account.held_millicredits).where(Account.id == bindparam("account_id"))
)


async def lock_key(transaction: Transaction, key_id: str) -> None:
    """Serialise this key's creates (PostgreSQL row lock; SQLite's write transactions are serial already), so
    counting its unfinished tasks and adding one is atomic."""
    await transaction.fetchone(_LOCK_KEY, {"key_id": key_id})


async def available_millicredits(transaction: Transaction, account_id: str) -> int:
    """What the account can still spend (balance - held), as the transaction sees it; 0 for no account."""
    row = await transaction.fetchone(_ACCOUNT_MONEY, {"account_id": account_id})
    return 0 if row is None else int(row.balance_millicredits - row.held_millicredits)


# --- worker tokens ---------------------------------------------------------------------------------------


async def insert_worker_token(
    session: AsyncSession, credential: NewCredential, *, name: str, engines: list[str] | None
) -> WorkerToken:
    row = WorkerToken(
        id=credential.id,
        name=name,
        secret_hash=credential.secret_hash,
        engines=engines,
        created_at=time.time(),
        revoked_at=None,
    )
    session.add(row)
    await session.flush()
    return row


async def get_worker_token(session: AsyncSession, token_id: str) -> WorkerToken | None:
    return await session.get(WorkerToken, token_id)


async def list_worker_tokens(session: AsyncSession) -> list[WorkerToken]:
    return list((await session.scalars(select(WorkerToken).order_by(WorkerToken.created_at, WorkerToken.id))).all())


async def revoke_worker_token(session: AsyncSession, token_id: str) -> bool:
    result = await session.execute(
        update(WorkerToken)
        .where(WorkerToken.id == token_id, WorkerToken.revoked_at.is_(None))
        .values(revoked_at=time.time())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
