"""`GET /v1/account`: the calling key's account (balance, holds, group), its limits and usable models."""

from __future__ import annotations

from fastapi import APIRouter

from reelgate.accounts.credits import to_credits
from reelgate.accounts.schemas import MyAccount
from reelgate.accounts.service import allowed_models, key_view
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
    account = caller.account
    models = allowed_models(caller.key, resources.registry.model_names())
    return MyAccount(
        id=account.id,
        name=account.name,
        user_group=account.user_group,
        balance=to_credits(account.balance_millicredits),
        held=to_credits(account.held_millicredits),
        available=to_credits(account.balance_millicredits - account.held_millicredits),
        price_multiplier=resources.pricing.current().group(account.user_group).multiplier,
        key=key_view(caller.key, caller.limits, models),
    )
