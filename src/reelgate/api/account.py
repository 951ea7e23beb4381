"""`GET /v1/account`: the calling key's account (balance, holds, group), its limits and usable models."""

from __future__ import annotations

from fastapi import APIRouter

from reelgate.accounts import service
from reelgate.accounts.schemas import MyAccount
from reelgate.api.auth import CurrentCaller, ResourcesDep
from reelgate.api.responses import errors

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
