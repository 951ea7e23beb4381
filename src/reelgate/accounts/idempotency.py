"""`Idempotency-Key` on create (docs/contract.md section 6).

The first request with a key claims it (`in_progress`, committed at once, with a short lock so a request that
died frees it); the task, its reservation and the stored answer (`done`) then commit in ONE transaction, so a
replay can never find a task without its answer or an answer without its task. A replay with the same body
gets the stored answer (same task, nothing reserved again); with another body a 422; while the first is still
running a 409. A request that ends in an error frees the key, so the client may try again. Keys are kept for
`idempotency_ttl_s` (24 h) after their answer.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.db.database import Database
from reelgate.db.driver import Statement, Transaction
from reelgate.db.models import IdempotencyKey
from reelgate.errors import ApiError, ErrorType

HEADER = "Idempotency-Key"
# Longer than any create can take (image checks have their own timeouts); after it a stuck claim is free.
IN_PROGRESS_LOCK_S = 120.0
_VALID = re.compile(r"^[\x21-\x7e]{1,255}$")


def validate_key(value: str) -> str:
    if not _VALID.match(value):
        raise ApiError(400, f"{HEADER} must be 1 to 255 visible ASCII characters", param=HEADER)
    return value


def fingerprint(body: dict[str, Any]) -> str:
    """Of the request as understood (fields after validation), so key order and spacing do not matter."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


async def claim(db: Database, api_key_id: str, key: str, body_fingerprint: str) -> dict[str, Any] | None:
    """Claim the key for this request (None), or return the stored answer of the request that used it."""
    now = time.time()
    try:
        async with db.transaction() as session:
            existing = await session.get(IdempotencyKey, (api_key_id, key), with_for_update=True)
            if existing is not None and existing.expires_at <= now:
                await session.delete(existing)
                await session.flush()
                existing = None
            if existing is not None:
                return _replay(existing, body_fingerprint)
            session.add(
                IdempotencyKey(
                    api_key_id=api_key_id,
                    key=key,
                    fingerprint=body_fingerprint,
                    state="in_progress",
                    task_id=None,
                    response=None,
                    created_at=now,
                    expires_at=now + IN_PROGRESS_LOCK_S,
                )
            )
    except IntegrityError:
        # Another request claimed it between our read and our insert: it is in progress.
        raise _in_progress() from None
    return None


def _replay(existing: IdempotencyKey, body_fingerprint: str) -> dict[str, Any]:
    if existing.fingerprint != body_fingerprint:
        raise ApiError(
            422,
            f"This {HEADER} was used with a different request body; use a new key for a new request",
            param=HEADER,
            error_type=ErrorType.INVALID_REQUEST,
        )
    if existing.state != "done" or existing.response is None:
        raise _in_progress()
    return dict(existing.response)


def _in_progress() -> ApiError:
    return ApiError(
        409,
        f"A request with this {HEADER} is still being processed; retry when it has finished",
        param=HEADER,
        error_type=ErrorType.INVALID_REQUEST,
        headers={"Retry-After": "1"},
    )


_COMPLETE = Statement(
    update(IdempotencyKey)
    .where(IdempotencyKey.api_key_id == bindparam("owner"), IdempotencyKey.key == bindparam("idempotency_key"))
    .values(
        state="done",
        task_id=bindparam("done_task_id"),
        response=bindparam("done_response", type_=IdempotencyKey.response.type),
        expires_at=bindparam("done_expires_at"),
    )
)


async def complete(
    transaction: Transaction,
    api_key_id: str,
    key: str,
    *,
    task_id: str,
    response: dict[str, Any],
    ttl_s: float,
) -> None:
    """Store the answer, in the transaction that creates the task."""
    await transaction.execute(
        _COMPLETE,
        {
            "owner": api_key_id,
            "idempotency_key": key,
            "done_task_id": task_id,
            "done_response": response,
            "done_expires_at": time.time() + ttl_s,
        },
    )


async def release(db: Database, api_key_id: str, key: str) -> None:
    """Free a claim whose request failed, so the same key can be tried again."""
    async with db.transaction() as session:
        await session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.api_key_id == api_key_id,
                IdempotencyKey.key == key,
                IdempotencyKey.state == "in_progress",
            )
        )


async def delete_expired(session: AsyncSession, *, now: float) -> int:
    result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def find(session: AsyncSession, api_key_id: str, key: str) -> IdempotencyKey | None:
    return await session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.api_key_id == api_key_id, IdempotencyKey.key == key)
    )
