"""What a request's caller is, as plain immutable values: one read of a key and its account can be kept by the
key cache (accounts/key_cache.py) and shared by every request of the key, which an ORM row (bound to one
session) cannot."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeyRecord:
    """What authenticating a request needs of a key: a plain immutable value, so one read can be kept by the
    key cache and shared by every request of the key (an ORM row belongs to one session)."""

    id: str
    name: str
    secret_hash: str
    account_id: str | None
    allowed_models: tuple[str, ...] | None
    rpm_limit: int | None
    read_rpm_limit: int | None
    max_concurrent: int | None
    expires_at: float | None
    revoked_at: float | None
    created_at: float


@dataclass(frozen=True)
class AccountRecord:
    """Who a key's account is (never its money: balances are read where they are used, in the transaction)."""

    id: str
    name: str
    user_group: str
    created_at: float
