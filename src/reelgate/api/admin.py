"""The admin API (`/admin/v1/...`) for operators and the web console: accounts, keys, grants, the ledger and
the audit. Mounted only when REELGATE_ADMIN_TOKEN is set; guarded by that bearer token."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from reelgate.accounts import service
from reelgate.accounts.credits import to_millicredits
from reelgate.accounts.schemas import (
    AccountList,
    AccountView,
    AuditView,
    CreateAccountRequest,
    CreatedKey,
    CreatedWorkerToken,
    CreateKeyRequest,
    CreateWorkerTokenRequest,
    GrantRequest,
    KeyView,
    LedgerPage,
    WorkerTokenList,
    WorkerTokenView,
)
from reelgate.api.auth import ResourcesDep, resources_of
from reelgate.api.responses import errors
from reelgate.errors import ApiError
from reelgate.queue import registry
from reelgate.queue.schemas import WorkerList
from reelgate.tasks.audit import audit

admin_bearer = HTTPBearer(auto_error=False, scheme_name="adminBearer", description="Bearer <REELGATE_ADMIN_TOKEN>")


async def require_admin(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(admin_bearer)]
) -> None:
    expected = resources_of(request).settings.admin_token
    given = credentials.credentials if credentials is not None else ""
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "Invalid admin token")


router = APIRouter(prefix="/admin/v1", tags=["Admin"], dependencies=[Depends(require_admin)])


@router.get("/accounts", response_model=AccountList, summary="List accounts", responses=errors(401, 500))
async def list_accounts(resources: ResourcesDep) -> AccountList:
    async with resources.db.read() as session:
        return AccountList(data=await service.account_views(session, pricing=resources.pricing.current()))


@router.post("/accounts", response_model=AccountView, summary="Create an account", responses=errors(400, 401, 500))
async def create_account(body: CreateAccountRequest, resources: ResourcesDep) -> AccountView:
    async with resources.db.transaction() as session:
        account = await service.create_account(
            session, name=body.name, user_group=body.user_group, credits_millicredits=to_millicredits(body.credits)
        )
        return service.account_view(account, keys=[], pricing=resources.pricing.current())


@router.get(
    "/accounts/{account_id}", response_model=AccountView, summary="One account", responses=errors(401, 404, 500)
)
async def get_account(account_id: str, resources: ResourcesDep) -> AccountView:
    async with resources.db.read() as session:
        return await service.account_view_of(session, account_id, pricing=resources.pricing.current())


@router.post(
    "/accounts/{account_id}/grants",
    response_model=AccountView,
    summary="Grant credits to an account (a ledger entry)",
    responses=errors(400, 401, 404, 500),
)
async def grant(account_id: str, body: GrantRequest, resources: ResourcesDep) -> AccountView:
    async with resources.db.transaction() as session:
        return await service.grant_view(
            session, account_id, to_millicredits(body.credits), note=body.note, pricing=resources.pricing.current()
        )


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
    async with resources.db.read() as session:
        return await service.ledger_page(session, account_id, pricing=resources.pricing.current(), limit=limit)


@router.post("/keys", response_model=CreatedKey, summary="Create an API key", responses=errors(400, 401, 404, 500))
async def create_key(body: CreateKeyRequest, resources: ResourcesDep) -> CreatedKey:
    async with resources.db.transaction() as session:
        return await service.create_key_view(session, body)


@router.post(
    "/keys/{key_id}/revoke", response_model=KeyView, summary="Revoke an API key", responses=errors(401, 404, 500)
)
async def revoke_key(key_id: str, resources: ResourcesDep) -> KeyView:
    return await service.revoke_key_view(resources.db, resources.key_cache, key_id)


@router.get(
    "/workers",
    response_model=WorkerList,
    summary="The workers registry: engines, running jobs, last seen, live workers per engine",
    responses=errors(401, 500),
)
async def list_workers(resources: ResourcesDep) -> WorkerList:
    return await registry.list_workers(resources.db, ttl_s=resources.settings.worker_ttl_s)


@router.get("/worker-tokens", response_model=WorkerTokenList, summary="List worker tokens", responses=errors(401, 500))
async def list_worker_tokens(resources: ResourcesDep) -> WorkerTokenList:
    async with resources.db.read() as session:
        return await service.worker_tokens(session)


@router.post(
    "/worker-tokens",
    response_model=CreatedWorkerToken,
    summary="Create a worker token (shown once) for a remote worker",
    responses=errors(400, 401, 500),
)
async def create_worker_token(body: CreateWorkerTokenRequest, resources: ResourcesDep) -> CreatedWorkerToken:
    async with resources.db.transaction() as session:
        return await service.create_worker_token(session, body, known_engines=list(resources.registry.engines))


@router.post(
    "/worker-tokens/{token_id}/revoke",
    response_model=WorkerTokenView,
    summary="Revoke a worker token: its workers stop at their next call, their tasks go back to pending",
    responses=errors(401, 404, 500),
)
async def revoke_worker_token(token_id: str, resources: ResourcesDep) -> WorkerTokenView:
    async with resources.db.transaction() as session:
        return await service.revoke_worker_token(session, token_id)


@router.get(
    "/audit",
    response_model=AuditView,
    summary="Reconcile the ledger: balances = sums of entries, every ended task settled once",
    responses=errors(401, 500),
)
async def run_audit(resources: ResourcesDep) -> AuditView:
    async with resources.db.read() as session:
        return AuditView.model_validate(await audit(session), from_attributes=True)
