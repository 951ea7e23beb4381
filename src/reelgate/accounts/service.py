"""Account use cases: accounts, keys, grants, limits, permissions and the account view. Functions take an open
session and never commit; every refusal is an ApiError naming its param."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.accounts import ledger, repository
from reelgate.accounts.credits import to_credits
from reelgate.accounts.keys import NewKey, generate_key
from reelgate.accounts.pricing import PricingTable
from reelgate.accounts.repository import KeyLimits
from reelgate.accounts.schemas import AccountView, KeyView, LimitsView
from reelgate.config import Settings
from reelgate.db.models import Account, ApiKey
from reelgate.errors import ApiError


@dataclass(frozen=True)
class EffectiveLimits:
    rpm: int
    # 0 = no limit on unfinished tasks.
    max_concurrent: int


def effective_limits(key: ApiKey, account: Account, pricing: PricingTable, settings: Settings) -> EffectiveLimits:
    """The key's own limit, else its group's (pricing file), else the service default."""
    group = pricing.group(account.user_group)
    rpm = key.rpm_limit or group.rpm or settings.default_rpm
    concurrent = key.max_concurrent or group.max_concurrent or settings.default_max_concurrent
    return EffectiveLimits(rpm=rpm, max_concurrent=concurrent)


def key_is_usable(key: ApiKey, now: float) -> bool:
    return key.revoked_at is None and (key.expires_at is None or key.expires_at > now)


def allowed_models(key: ApiKey, known_models: list[str]) -> list[str]:
    """The public models this key may use, in the service's order."""
    if key.allowed_models is None:
        return list(known_models)
    allowed = set(key.allowed_models)
    return [model for model in known_models if model in allowed]


def authorize_model(key: ApiKey, model: str, known_models: list[str]) -> list[str]:
    """403 for a known model this key may not use; returns the models it may use (for the 404 suggestion)."""
    usable = allowed_models(key, known_models)
    if model in known_models and model not in usable:
        raise ApiError(
            403,
            f"This API key may not use the model {model!r}",
            param="model",
            fallback_suggestion=usable[0] if usable else None,
        )
    return usable


async def create_account(
    session: AsyncSession, *, name: str, user_group: str, credits_millicredits: int = 0, note: str | None = None
) -> Account:
    account = await repository.insert_account(session, name=name, user_group=user_group)
    if credits_millicredits > 0:
        await ledger.grant(session, account.id, credits_millicredits, note=note or "initial credits")
        await session.refresh(account)
    return account


async def require_account(session: AsyncSession, account_id: str) -> Account:
    account = await repository.get_account(session, account_id)
    if account is None:
        raise ApiError(404, f"Account not found: {account_id!r}", param="account_id")
    return account


async def create_key(
    session: AsyncSession,
    *,
    name: str,
    user_group: str,
    account_id: str | None = None,
    credits_millicredits: int = 0,
    limits: KeyLimits | None = None,
) -> tuple[NewKey, ApiKey, Account]:
    """A key on an existing account, or on a new account of its own (named after the key) when none is given.
    `credits` are granted to that account either way."""
    if account_id is None:
        account = await create_account(
            session, name=name, user_group=user_group, credits_millicredits=credits_millicredits
        )
    else:
        account = await require_account(session, account_id)
        if credits_millicredits > 0:
            await ledger.grant(session, account.id, credits_millicredits, note=f"with key {name}")
            await session.refresh(account)
    new_key = generate_key()
    row = await repository.insert_key(session, new_key, name=name, account_id=account.id, limits=limits)
    return new_key, row, account


async def grant(session: AsyncSession, account_id: str, credits_millicredits: int, *, note: str | None) -> Account:
    if credits_millicredits <= 0:
        raise ApiError(400, "A grant must be a positive number of credits", param="credits")
    if not await ledger.grant(session, account_id, credits_millicredits, note=note):
        raise ApiError(404, f"Account not found: {account_id!r}", param="account_id")
    return await require_account(session, account_id)


def account_view(account: Account, *, keys: list[ApiKey], pricing: PricingTable) -> AccountView:
    return AccountView(
        id=account.id,
        name=account.name,
        user_group=account.user_group,
        balance=to_credits(account.balance_millicredits),
        held=to_credits(account.held_millicredits),
        available=to_credits(account.balance_millicredits - account.held_millicredits),
        price_multiplier=pricing.group(account.user_group).multiplier,
        created=int(account.created_at),
        keys=[key_view(key) for key in keys],
    )


def key_view(key: ApiKey, limits: EffectiveLimits | None = None, models: list[str] | None = None) -> KeyView:
    now = time.time()
    status = "revoked" if key.revoked_at is not None else "expired" if not key_is_usable(key, now) else "active"
    return KeyView(
        id=key.id,
        name=key.name,
        account_id=key.account_id or "",
        status=status,
        allowed_models=models if models is not None else key.allowed_models,
        expires_at=int(key.expires_at) if key.expires_at is not None else None,
        limits=LimitsView(
            rpm=limits.rpm if limits else key.rpm_limit,
            max_concurrent=limits.max_concurrent if limits else key.max_concurrent,
        ),
        created=int(key.created_at),
    )
