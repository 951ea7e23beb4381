"""SQL for API keys and their balances. Callers own the transaction."""

from __future__ import annotations

import time

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.accounts.keys import NewKey
from reelgate.db.models import ApiKey
from reelgate.webhooks import repository as webhooks


async def insert_key(
    session: AsyncSession, new_key: NewKey, *, name: str, balance_millicredits: int, user_group: str
) -> ApiKey:
    now = time.time()
    row = ApiKey(
        id=new_key.key_id,
        name=name,
        secret_hash=new_key.secret_hash,
        balance_millicredits=balance_millicredits,
        user_group=user_group,
        created_at=now,
        revoked_at=None,
    )
    session.add(row)
    await session.flush()
    await webhooks.insert_secret(session, new_key.key_id, new_key.webhook_secret, now=now)
    return row


async def get_key(session: AsyncSession, key_id: str) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    return list((await session.scalars(select(ApiKey).order_by(ApiKey.created_at))).all())


async def count_active_keys(session: AsyncSession) -> int:
    rows = await session.scalars(select(ApiKey.id).where(ApiKey.revoked_at.is_(None)))
    return len(rows.all())


async def revoke_key(session: AsyncSession, key_id: str) -> bool:
    result = await session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=time.time())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def try_reserve(session: AsyncSession, key_id: str, amount_millicredits: int) -> bool:
    """Take `amount` from the balance only if it is there: one conditional UPDATE, so concurrent creates
    can never drive a balance below zero."""
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.balance_millicredits >= amount_millicredits)
        .values(balance_millicredits=ApiKey.balance_millicredits - amount_millicredits)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def refund(session: AsyncSession, key_id: str, amount_millicredits: int) -> None:
    await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .values(balance_millicredits=ApiKey.balance_millicredits + amount_millicredits)
    )


async def grant(session: AsyncSession, key_id: str, amount_millicredits: int) -> bool:
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .values(balance_millicredits=ApiKey.balance_millicredits + amount_millicredits)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
