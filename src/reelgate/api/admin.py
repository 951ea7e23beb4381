"""The admin API (`/admin/v1/...`) for operators and the web console: accounts, keys, grants, the ledger and
the audit. Mounted only when REELGATE_ADMIN_TOKEN is set; guarded by that bearer token."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from reelgate.accounts import ledger, repository, service
from reelgate.accounts.audit import audit
from reelgate.accounts.credits import to_credits, to_millicredits
from reelgate.accounts.repository import KeyLimits
from reelgate.accounts.schemas import (
    AccountList,
    AccountView,
    AuditView,
    CreateAccountRequest,
    CreatedKey,
    CreateKeyRequest,
    GrantRequest,
    KeyView,
    LedgerEntry,
    LedgerPage,
)
from reelgate.api.auth import ResourcesDep, resources_of
from reelgate.api.responses import errors
from reelgate.errors import ApiError

admin_bearer = HTTPBearer(auto_error=False, scheme_name="adminBearer", description="Bearer <REELGATE_ADMIN_TOKEN>")


async def require_admin(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(admin_bearer)]
) -> None:
    expected = resources_of(request).settings.admin_token
    given = credentials.credentials if credentials is not None else ""
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "Invalid admin token")


router = APIRouter(prefix="/admin/v1", tags=["Admin"], dependencies=[Depends(require_admin)])


async def _account_view(resources: ResourcesDep, account_id: str) -> AccountView:
    async with resources.db.read() as session:
        account = await service.require_account(session, account_id)
        keys = await repository.list_keys(session, account_id=account_id)
    return service.account_view(account, keys=keys, pricing=resources.pricing.current())


@router.get("/accounts", response_model=AccountList, summary="List accounts", responses=errors(401, 500))
async def list_accounts(resources: ResourcesDep) -> AccountList:
    pricing = resources.pricing.current()
    async with resources.db.read() as session:
        accounts = await repository.list_accounts(session)
        keys = await repository.list_keys(session)
    return AccountList(
        data=[
            service.account_view(account, keys=[k for k in keys if k.account_id == account.id], pricing=pricing)
            for account in accounts
        ]
    )


@router.post("/accounts", response_model=AccountView, summary="Create an account", responses=errors(400, 401, 500))
async def create_account(body: CreateAccountRequest, resources: ResourcesDep) -> AccountView:
    async with resources.db.transaction() as session:
        account = await service.create_account(
            session, name=body.name, user_group=body.user_group, credits_millicredits=to_millicredits(body.credits)
        )
    return await _account_view(resources, account.id)


@router.get(
    "/accounts/{account_id}", response_model=AccountView, summary="One account", responses=errors(401, 404, 500)
)
async def get_account(account_id: str, resources: ResourcesDep) -> AccountView:
    return await _account_view(resources, account_id)


@router.post(
    "/accounts/{account_id}/grants",
    response_model=AccountView,
    summary="Grant credits to an account (a ledger entry)",
    responses=errors(400, 401, 404, 500),
)
async def grant(account_id: str, body: GrantRequest, resources: ResourcesDep) -> AccountView:
    async with resources.db.transaction() as session:
        await service.grant(session, account_id, to_millicredits(body.credits), note=body.note)
    return await _account_view(resources, account_id)


@router.get(
    "/accounts/{account_id}/ledger",
    response_model=LedgerPage,
    summary="An account's ledger entries, newest first",
    responses=errors(400, 401, 404, 500),
)
async def account_ledger(
    account_id: str,
    resources: ResourcesDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Entries, 1..1000")] = 100,
) -> LedgerPage:
    view = await _account_view(resources, account_id)
    async with resources.db.read() as session:
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


@router.post("/keys", response_model=CreatedKey, summary="Create an API key", responses=errors(400, 401, 404, 500))
async def create_key(body: CreateKeyRequest, resources: ResourcesDep) -> CreatedKey:
    limits = KeyLimits(
        allowed_models=body.allowed_models,
        rpm_limit=body.rpm,
        max_concurrent=body.max_concurrent,
        expires_at=float(body.expires_at) if body.expires_at is not None else None,
    )
    async with resources.db.transaction() as session:
        new_key, row, _ = await service.create_key(
            session,
            name=body.name,
            user_group=body.user_group,
            account_id=body.account_id,
            credits_millicredits=to_millicredits(body.credits),
            limits=limits,
        )
    return CreatedKey(key=new_key.plaintext, webhook_secret=new_key.webhook_secret, info=service.key_view(row))


@router.post(
    "/keys/{key_id}/revoke", response_model=KeyView, summary="Revoke an API key", responses=errors(401, 404, 500)
)
async def revoke_key(key_id: str, resources: ResourcesDep) -> KeyView:
    async with resources.db.transaction() as session:
        revoked = await repository.revoke_key(session, key_id)
        row = await repository.get_key(session, key_id)
    if not revoked or row is None:
        raise ApiError(404, f"No active key with id {key_id!r}", param="key_id")
    return service.key_view(row)


@router.get(
    "/audit",
    response_model=AuditView,
    summary="Reconcile the ledger: balances = sums of entries, every ended task settled once",
    responses=errors(401, 500),
)
async def run_audit(resources: ResourcesDep) -> AuditView:
    async with resources.db.read() as session:
        report = await audit(session)
    return AuditView(
        ok=report.ok,
        accounts=report.accounts,
        entries=report.entries,
        tasks_checked=report.tasks_checked,
        problems=report.problems,
    )
