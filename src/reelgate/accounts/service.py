"""Account use cases: accounts, keys, grants, limits, permissions and the account view. Functions take an open
session and never commit; every refusal is an ApiError naming its param."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.accounts import ledger, repository
from reelgate.accounts.credits import to_credits, to_millicredits
from reelgate.accounts.key_cache import KeyCache
from reelgate.accounts.keys import (
    WORKER_TOKEN_PREFIX,
    NewKey,
    generate_key,
    generate_worker_token,
    is_api_key,
    is_worker_token,
    secret_matches,
    split_key,
)
from reelgate.accounts.limits import Decision, RateLimiter
from reelgate.accounts.pricing import PricingTable
from reelgate.accounts.records import AccountRecord, KeyRecord
from reelgate.accounts.repository import KeyLimits
from reelgate.accounts.schemas import (
    AccountUsage,
    AccountView,
    CreatedKey,
    CreatedWorkerToken,
    CreateKeyRequest,
    CreateWorkerTokenRequest,
    KeyView,
    LedgerEntry,
    LedgerPage,
    LimitsView,
    MyAccount,
    UsageDay,
    WorkerTokenList,
    WorkerTokenView,
)
from reelgate.config import Settings
from reelgate.db.database import Database
from reelgate.db.models import Account, ApiKey, WorkerToken
from reelgate.errors import ApiError
from reelgate.queue import registry
from reelgate.queue import repository as queue_repository
from reelgate.queue.remote_leases import WorkerPass
from reelgate.webhooks import repository as webhooks
from reelgate.webhooks.signing import generate_secret

log = logging.getLogger(__name__)

INVALID_KEY_MESSAGE = "Invalid or expired token"
_BUCKET_WORDS = {"write": "requests (creates and other writes)", "read": "reads"}


# What a request spends: reads (every GET) have a bucket of their own, so a client polling its tasks never
# spends the creates of its key (docs/accounts.md, Rate limits).
Bucket = Literal["write", "read"]


class KeyFields(Protocol):
    """What the use cases read of a key: a cached `KeyRecord` (a request's caller) or an `ApiKey` row."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def account_id(self) -> str | None: ...
    @property
    def allowed_models(self) -> list[str] | tuple[str, ...] | None: ...
    @property
    def rpm_limit(self) -> int | None: ...
    @property
    def read_rpm_limit(self) -> int | None: ...
    @property
    def max_concurrent(self) -> int | None: ...
    @property
    def expires_at(self) -> float | None: ...
    @property
    def revoked_at(self) -> float | None: ...
    @property
    def created_at(self) -> float: ...


class GroupOf(Protocol):
    @property
    def user_group(self) -> str: ...


@dataclass(frozen=True)
class EffectiveLimits:
    rpm: int
    # 0 = no limit on unfinished tasks.
    max_concurrent: int
    read_rpm: int = 0

    def per_minute(self, bucket: Bucket) -> int:
        return self.read_rpm if bucket == "read" else self.rpm


def effective_limits(key: KeyFields, account: GroupOf, pricing: PricingTable, settings: Settings) -> EffectiveLimits:
    """The key's own limit, else its group's (pricing file), else the service default."""
    group = pricing.group(account.user_group)
    rpm = key.rpm_limit or group.rpm or settings.default_rpm
    read_rpm = key.read_rpm_limit or group.read_rpm or settings.default_read_rpm
    concurrent = key.max_concurrent or group.max_concurrent or settings.default_max_concurrent
    return EffectiveLimits(rpm=rpm, max_concurrent=concurrent, read_rpm=read_rpm)


def limiter_key(key_id: str, bucket: Bucket) -> str:
    # Writes keep the key id itself, so the counters of a running deployment carry over an upgrade.
    return key_id if bucket == "write" else f"{key_id}:read"


@dataclass(frozen=True)
class Caller:
    """An authenticated request: its key, the key's account, its limits and the rate-limit decision."""

    key: KeyRecord
    account: AccountRecord
    limits: EffectiveLimits
    decision: Decision


async def authenticate(
    keys: KeyCache,
    token: str | None,
    *,
    pricing: PricingTable,
    settings: Settings,
    limiter: RateLimiter,
    bucket: Bucket = "write",
) -> Caller:
    """The caller behind a bearer token, counted against the rate limit of its `bucket` (the decision, and so
    the X-RateLimit-* headers, are that bucket's). Every failure to authenticate is the same 401, so a caller
    learns nothing about which keys exist; over the limit is a 429 with Retry-After."""
    if token is None:
        raise ApiError(401, "Missing API key: send 'Authorization: Bearer <key>'")
    if is_worker_token(token):
        raise ApiError(403, "A worker token cannot call the public API: it may call the worker routes only")
    parts = split_key(token)
    if parts is None:
        raise ApiError(401, INVALID_KEY_MESSAGE)
    key_id, secret = parts
    found = await keys.get(key_id)
    if found is None:
        raise ApiError(401, INVALID_KEY_MESSAGE)
    key, account = found
    if not key_is_usable(key, time.time()) or not secret_matches(secret, key.secret_hash):
        raise ApiError(401, INVALID_KEY_MESSAGE)
    limits = effective_limits(key, account, pricing, settings)
    try:
        decision = await limiter.hit(limiter_key(key.id, bucket), limits.per_minute(bucket))
    except Exception:
        # The shared counter (Redis) is down: refuse rather than let every key through unlimited.
        log.exception("rate limiter unavailable")
        raise ApiError(503, "Rate limiter unavailable", headers={"Retry-After": "5"}) from None
    if not decision.allowed:
        raise ApiError(
            429,
            f"Rate limit exceeded: this key may make {decision.limit} {_BUCKET_WORDS[bucket]} per minute",
            fallback_suggestion=f"retry after {max(1, decision.reset_s)} seconds",
            headers=decision.headers(),
        )
    return Caller(key=key, account=account, limits=limits, decision=decision)


def key_is_usable(key: KeyFields, now: float) -> bool:
    return key.revoked_at is None and (key.expires_at is None or key.expires_at > now)


def allowed_models(key: KeyFields, known_models: list[str]) -> list[str]:
    """The public models this key may use, in the service's order."""
    if key.allowed_models is None:
        return list(known_models)
    allowed = set(key.allowed_models)
    return [model for model in known_models if model in allowed]


def authorize_model(key: KeyFields, model: str, known_models: list[str]) -> list[str]:
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


async def create_key_view(session: AsyncSession, request: CreateKeyRequest) -> CreatedKey:
    """The admin API's create: the key and its callback secret, shown once."""
    limits = KeyLimits(
        allowed_models=request.allowed_models,
        rpm_limit=request.rpm,
        read_rpm_limit=request.read_rpm,
        max_concurrent=request.max_concurrent,
        expires_at=float(request.expires_at) if request.expires_at is not None else None,
    )
    new_key, row, _ = await create_key(
        session,
        name=request.name,
        user_group=request.user_group,
        account_id=request.account_id,
        credits_millicredits=to_millicredits(request.credits),
        limits=limits,
    )
    return CreatedKey(key=new_key.plaintext, webhook_secret=new_key.webhook_secret, info=key_view(row))


async def bootstrap_key(session: AsyncSession, *, credits_millicredits: int, user_group: str) -> NewKey | None:
    """A development key on an account of its own, if no active key exists yet (`make run`)."""
    if await repository.count_active_keys(session) > 0:
        return None
    new_key, _, _ = await create_key(
        session, name="development", user_group=user_group, credits_millicredits=credits_millicredits
    )
    return new_key


async def revoke_key(session: AsyncSession, key_id: str) -> ApiKey:
    """Revoke an active key: every later request with it is a 401. 404 for a key that is unknown or revoked."""
    if not await repository.revoke_key(session, key_id):
        raise ApiError(404, f"No active key with id {key_id!r}", param="key_id")
    row = await repository.get_key(session, key_id)
    if row is None:  # revoked in this very transaction, so it exists
        raise RuntimeError(f"key {key_id} vanished while being revoked")
    return row


async def revoke_key_view(db: Database, keys: KeyCache, key_id: str) -> KeyView:
    """The admin API's revoke: committed, then this process forgets its cached keys at once (the others do
    within half a second, by the change counter)."""
    async with db.transaction() as session:
        row = await revoke_key(session, key_id)
    keys.forget()
    return key_view(row)


async def rotate_webhook_secret(session: AsyncSession, key_id: str, *, overlap_s: float) -> str:
    """Give an active key a new callback signing secret; the previous one keeps signing for `overlap_s`."""
    key = await repository.get_key(session, key_id)
    secret = generate_secret()
    if (
        key is None
        or key.revoked_at is not None
        or not await webhooks.rotate_secret(session, key_id, secret, now=time.time(), overlap_s=overlap_s)
    ):
        raise ApiError(404, f"No active key with id {key_id!r}", param="key_id")
    return secret


async def keys_with_accounts(session: AsyncSession) -> list[tuple[ApiKey, Account | None]]:
    keys = await repository.list_keys(session)
    accounts = {account.id: account for account in await repository.list_accounts(session)}
    return [(key, accounts.get(key.account_id or "")) for key in keys]


async def grant(session: AsyncSession, account_id: str, credits_millicredits: int, *, note: str | None) -> Account:
    if credits_millicredits <= 0:
        raise ApiError(400, "A grant must be a positive number of credits", param="credits")
    if not await ledger.grant(session, account_id, credits_millicredits, note=note):
        raise ApiError(404, f"Account not found: {account_id!r}", param="account_id")
    return await require_account(session, account_id)


async def grant_view(
    session: AsyncSession, account_id: str, credits_millicredits: int, *, note: str | None, pricing: PricingTable
) -> AccountView:
    await grant(session, account_id, credits_millicredits, note=note)
    return await account_view_of(session, account_id, pricing=pricing)


async def account_view_of(session: AsyncSession, account_id: str, *, pricing: PricingTable) -> AccountView:
    account = await require_account(session, account_id)
    keys = await repository.list_keys(session, account_id=account_id)
    return account_view(account, keys=keys, pricing=pricing)


async def account_views(session: AsyncSession, *, pricing: PricingTable) -> list[AccountView]:
    accounts = await repository.list_accounts(session)
    keys = await repository.list_keys(session)
    return [
        account_view(account, keys=[k for k in keys if k.account_id == account.id], pricing=pricing)
        for account in accounts
    ]


async def ledger_page(session: AsyncSession, account_id: str, *, pricing: PricingTable, limit: int) -> LedgerPage:
    """The account and its latest ledger entries, newest first."""
    view = await account_view_of(session, account_id, pricing=pricing)
    rows = await ledger.entries(session, account_id, limit=limit)
    data = [
        LedgerEntry(
            id=row.id,
            kind=row.kind,
            credits=to_credits(row.amount_millicredits),
            task_id=row.task_id,
            note=row.note,
            created=row.created_at,
        )
        for row in rows
    ]
    return LedgerPage(account=view, data=data)


def _account_fields(account: Account, pricing: PricingTable) -> dict[str, Any]:
    """What every view of an account shows: who it is, its money in credits, its group's price multiplier."""
    return {
        "id": account.id,
        "name": account.name,
        "user_group": account.user_group,
        "balance": to_credits(account.balance_millicredits),
        "held": to_credits(account.held_millicredits),
        "available": to_credits(account.balance_millicredits - account.held_millicredits),
        "price_multiplier": pricing.group(account.user_group).multiplier,
    }


async def my_account(db: Database, caller: Caller, known_models: list[str], pricing: PricingTable) -> MyAccount:
    """`GET /v1/account`: the calling key's account (its money read now: the cache holds none), its limits and
    the models it may use."""
    async with db.read() as session:
        account = await require_account(session, caller.account.id)
    return MyAccount(
        **_account_fields(account, pricing),
        key=key_view(caller.key, caller.limits, allowed_models(caller.key, known_models)),
    )


DAY_S = 86400
MAX_USAGE_DAYS = 90


async def account_usage(db: Database, account_id: str, *, days: int, now: float | None = None) -> AccountUsage:
    """`GET /v1/account/usage`: the last `days` UTC days, today included, from the ledger (so it agrees with
    the balance to the millicredit): reserves count the tasks created, captures and releases how they ended."""
    if not 1 <= days <= MAX_USAGE_DAYS:
        raise ApiError(400, f"days must be 1..{MAX_USAGE_DAYS}", param="days")
    today = int((time.time() if now is None else now) // DAY_S)
    first = today - days + 1
    async with db.read() as session:
        movements = await ledger.task_movements_since(session, account_id, float(first * DAY_S))
    zero = {"tasks": 0, "completed": 0, "failed": 0, "spent": 0, "released": 0}
    counts = {day: dict(zero) for day in range(first, today + 1)}
    for kind, amount, created in movements:
        bucket = counts.get(int(created // DAY_S))
        if bucket is None:  # written after `now` was read
            continue
        if kind == ledger.EntryKind.RESERVE:
            bucket["tasks"] += 1
        elif kind == ledger.EntryKind.CAPTURE:
            bucket["completed"] += 1
            bucket["spent"] += amount
        else:
            bucket["failed"] += 1
            bucket["released"] += amount
    data = [
        UsageDay(
            date=datetime.fromtimestamp(day * DAY_S, tz=UTC).date().isoformat(),
            tasks=c["tasks"],
            completed=c["completed"],
            failed=c["failed"],
            credits_spent=to_credits(c["spent"]),
            credits_released=to_credits(c["released"]),
        )
        for day, c in counts.items()
    ]
    return AccountUsage(days=days, credits_spent=to_credits(sum(c["spent"] for c in counts.values())), data=data)


def account_view(account: Account, *, keys: list[ApiKey], pricing: PricingTable) -> AccountView:
    return AccountView(
        **_account_fields(account, pricing),
        created=int(account.created_at),
        keys=[key_view(key) for key in keys],
    )


def key_view(key: KeyFields, limits: EffectiveLimits | None = None, models: list[str] | None = None) -> KeyView:
    now = time.time()
    status = "revoked" if key.revoked_at is not None else "expired" if not key_is_usable(key, now) else "active"
    return KeyView(
        id=key.id,
        name=key.name,
        account_id=key.account_id or "",
        status=status,
        allowed_models=models if models is not None else _listed(key.allowed_models),
        expires_at=int(key.expires_at) if key.expires_at is not None else None,
        limits=LimitsView(
            rpm=limits.rpm if limits else key.rpm_limit,
            read_rpm=limits.read_rpm if limits else key.read_rpm_limit,
            max_concurrent=limits.max_concurrent if limits else key.max_concurrent,
        ),
        created=int(key.created_at),
    )


def _listed(models: list[str] | tuple[str, ...] | None) -> list[str] | None:
    return list(models) if models is not None else None


# --- worker tokens -----------------------------------------------------------------------------------------

INVALID_WORKER_TOKEN = "Invalid or revoked worker token"


async def authenticate_worker(db: Database, token: str | None) -> WorkerPass:
    """The worker behind a bearer worker token (the worker routes' only credential; an API key is refused)."""
    if token is None:
        raise ApiError(401, f"Missing worker token: send 'Authorization: Bearer {WORKER_TOKEN_PREFIX}_...'")
    if is_api_key(token):
        raise ApiError(403, "An API key cannot call the worker routes: they take a worker token")
    parts = split_key(token, WORKER_TOKEN_PREFIX)
    if parts is None:
        raise ApiError(401, INVALID_WORKER_TOKEN)
    token_id, secret = parts
    async with db.read() as session:
        row = await repository.get_worker_token(session, token_id)
    if row is None or row.revoked_at is not None or not secret_matches(secret, row.secret_hash):
        raise ApiError(401, INVALID_WORKER_TOKEN)
    return WorkerPass(token_id=row.id, engines=frozenset(row.engines) if row.engines is not None else None)


def worker_token_view(row: WorkerToken) -> WorkerTokenView:
    return WorkerTokenView(
        id=row.id,
        name=row.name,
        engines=row.engines,
        status="revoked" if row.revoked_at is not None else "active",
        created=int(row.created_at),
    )


async def create_worker_token(
    session: AsyncSession, request: CreateWorkerTokenRequest, *, known_engines: list[str]
) -> CreatedWorkerToken:
    """A worker token, shown once and stored as a hash. `engines` must name engines this deployment has."""
    if request.engines is not None:
        unknown = [name for name in request.engines if name not in known_engines]
        if unknown:
            raise ApiError(
                400,
                f"Unknown engine(s) {', '.join(unknown)}; known: {', '.join(known_engines)}",
                param="engines",
            )
    credential = generate_worker_token()
    row = await repository.insert_worker_token(session, credential, name=request.name, engines=request.engines)
    return CreatedWorkerToken(**worker_token_view(row).model_dump(exclude={"object"}), token=credential.plaintext)


async def worker_tokens(session: AsyncSession) -> WorkerTokenList:
    return WorkerTokenList(data=[worker_token_view(row) for row in await repository.list_worker_tokens(session)])


async def revoke_worker_token(session: AsyncSession, token_id: str) -> WorkerTokenView:
    """Revoke a worker token: its workers are refused at their next call, leave the registry, and the tasks
    they hold go back to pending at once."""
    if not await repository.revoke_worker_token(session, token_id):
        raise ApiError(404, f"No active worker token with id {token_id!r}", param="token_id")
    owners = await registry.forget_workers_of_token(session, token_id)
    released = await queue_repository.release_leases(session, owners, now=time.time())
    if released:
        log.warning("worker token revoked; its tasks back to pending", extra={"token_id": token_id, "tasks": released})
    row = await repository.get_worker_token(session, token_id)
    if row is None:
        raise RuntimeError(f"worker token {token_id} vanished while being revoked")
    return worker_token_view(row)
