"""`GET /v1/account`: the calling key's account (balance, holds, group), its limits and usable models; and
`GET /v1/account/usage`: its use per day."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from reelgate.accounts import service
from reelgate.accounts.schemas import AccountUsage, MyAccount
from reelgate.api.auth import CurrentCaller, ResourcesDep
from reelgate.api.responses import errors
from reelgate.api.strict import reject_unknown_query

router = APIRouter(prefix="/v1", tags=["Account"])


@router.get(
    "/account",
    response_model=MyAccount,
    operation_id="getAccount",
    summary="The calling key's account, limits and allowed models",
    responses=errors(401, 429, 500, 503),
)
async def get_account(caller: CurrentCaller, resources: ResourcesDep) -> MyAccount:
    return await service.my_account(resources.db, caller, resources.registry.model_names(), resources.pricing.current())


@router.get(
    "/account/usage",
    response_model=AccountUsage,
    operation_id="getAccountUsage",
    summary="The account's use per UTC day (tasks created, completed, failed; credits spent), oldest first",
    responses=errors(400, 401, 429, 500, 503),
)
async def get_account_usage(
    request: Request,
    caller: CurrentCaller,
    resources: ResourcesDep,
    days: Annotated[int, Query(ge=1, le=service.MAX_USAGE_DAYS, description="Days, today included: 1..90")] = 30,
) -> AccountUsage:
    reject_unknown_query(request, allowed=("days",))
    return await service.account_usage(resources.db, caller.account.id, days=days)
