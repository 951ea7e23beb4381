"""Wire shapes of the account API (`GET /v1/account`) and the admin API (`/admin/v1/...`). Credits are numbers
of credits (integer millicredits inside)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

NAME = Field(min_length=1, max_length=200)
GROUP_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
# Credits accepted from an operator: up to a trillion, so millicredits always fit a 64-bit integer.
MAX_CREDITS = 1e12


class LimitsView(BaseModel):
    rpm: int | None = Field(None, description="Writes per minute of the key (sliding 60 s window)")
    read_rpm: int | None = Field(None, description="Reads (GET) per minute of the key, counted apart from writes")
    max_concurrent: int | None = Field(None, description="Unfinished tasks at once; 0 = no limit")


class KeyView(BaseModel):
    id: str
    name: str
    account_id: str
    status: Literal["active", "revoked", "expired"]
    allowed_models: list[str] | None = Field(None, description="Models the key may use; null = all")
    expires_at: int | None = None
    limits: LimitsView
    created: int


class AccountView(BaseModel):
    object: Literal["account"] = "account"
    id: str
    name: str
    user_group: str
    balance: float = Field(description="Credits owned (grants and adjustments minus captures)")
    held: float = Field(description="Credits reserved by unfinished tasks")
    available: float = Field(description="balance - held: what new tasks can spend")
    price_multiplier: float
    created: int
    keys: list[KeyView] = Field(default_factory=list)


class MyAccount(BaseModel):
    """`GET /v1/account`: the calling key's account, its limits and the models it may use."""

    object: Literal["account"] = "account"
    id: str
    name: str
    user_group: str
    balance: float
    held: float
    available: float
    price_multiplier: float
    key: KeyView


class UsageDay(BaseModel):
    date: str = Field(description="The UTC day, YYYY-MM-DD")
    tasks: int = Field(description="Tasks created (credits reserved) that day")
    completed: int = Field(description="Tasks whose credits were captured that day")
    failed: int = Field(description="Tasks whose credits were released that day (failed or cancelled)")
    credits_spent: float = Field(description="Credits captured that day")
    credits_released: float = Field(description="Credits given back that day")


class AccountUsage(BaseModel):
    """`GET /v1/account/usage`: the account's use per UTC day, every key of the account together, oldest
    first, one entry per day of the window (days without use included, as zeros)."""

    object: Literal["list"] = "list"
    days: int
    credits_spent: float = Field(description="Credits captured over the whole window")
    data: list[UsageDay]


class AccountList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AccountView]


class CreateAccountRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    name: str = NAME
    user_group: str = Field("default", pattern=GROUP_PATTERN)
    credits: float = Field(0, ge=0, le=MAX_CREDITS, allow_inf_nan=False)


class GrantRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    credits: float = Field(gt=0, le=MAX_CREDITS, allow_inf_nan=False)
    note: str | None = Field(None, max_length=500)


class CreateKeyRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    name: str = NAME
    account_id: str | None = Field(None, max_length=32, description="Omitted: a new account for this key")
    user_group: str = Field("default", pattern=GROUP_PATTERN, description="Group of a new account")
    credits: float = Field(0, ge=0, le=MAX_CREDITS, allow_inf_nan=False)
    allowed_models: list[str] | None = Field(None, min_length=1, max_length=100)
    rpm: int | None = Field(None, ge=1, le=10**6)
    read_rpm: int | None = Field(None, ge=1, le=10**6)
    max_concurrent: int | None = Field(None, ge=1, le=10**6)
    expires_at: int | None = Field(None, ge=0, le=10**11, description="Unix seconds")


class CreatedKey(BaseModel):
    object: Literal["api_key"] = "api_key"
    key: str = Field(description="The API key, shown once")
    webhook_secret: str = Field(description="Its callback signing secret, shown once")
    info: KeyView


class LedgerEntry(BaseModel):
    id: int
    kind: Literal["grant", "reserve", "capture", "release", "adjust"]
    credits: float
    task_id: str | None = None
    note: str | None = None
    created: float


class LedgerPage(BaseModel):
    object: Literal["list"] = "list"
    account: AccountView
    data: list[LedgerEntry]


class AuditView(BaseModel):
    ok: bool
    accounts: int
    entries: int
    tasks_checked: int
    problems: list[str]


class CreateWorkerTokenRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    name: str = NAME
    engines: list[str] | None = Field(None, min_length=1, max_length=32, description="Null = every engine")


class WorkerTokenView(BaseModel):
    object: Literal["worker_token"] = "worker_token"
    id: str
    name: str
    engines: list[str] | None = Field(None, description="Engines its workers may claim; null = every engine")
    status: Literal["active", "revoked"]
    created: int


class CreatedWorkerToken(WorkerTokenView):
    token: str = Field(description="The worker token, shown once")


class WorkerTokenList(BaseModel):
    object: Literal["list"] = "list"
    data: list[WorkerTokenView]
