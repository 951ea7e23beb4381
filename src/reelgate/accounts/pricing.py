"""The pricing table: what a task costs per model and user group, read from a TOML file and reloaded when the
file changes (checked on use, by modification time and size) or on SIGHUP.

```toml
[default]                      # models not listed below
billing_rule = "per_second"    # per_second: price x seconds of video; per_call: price per task
price = 1.0                    # credits

[models."kling-o1-image-to-video"]
billing_rule = "per_call"
price = 4.0

[groups.vip]                   # user groups: a price multiplier and per-key limits for the group's keys
multiplier = 0.5
rpm = 600                      # writes per minute (creates, cancels, uploads)
read_rpm = 6000                # reads per minute (every GET)
max_concurrent = 20
max_files = 500                # uploaded files an account may hold
```

A file that cannot be read or is invalid at start refuses the start; on reload it is logged and the previous
table stays in force (a typo must never make every create fail or become free).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reelgate.accounts.credits import MILLI

log = logging.getLogger(__name__)

BillingRule = Literal["per_call", "per_second"]


class ModelPrice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    billing_rule: BillingRule
    price: float = Field(ge=0, allow_inf_nan=False)


class GroupTerms(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    multiplier: float = Field(1.0, ge=0, allow_inf_nan=False)
    # Per-key limits for keys of this group that set none of their own; None = the service default.
    rpm: int | None = Field(None, ge=1)
    read_rpm: int | None = Field(None, ge=1)
    max_concurrent: int | None = Field(None, ge=1)
    # Unexpired uploaded files an account of this group may hold; None = the service default.
    max_files: int | None = Field(None, ge=0)


class PricingTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default: ModelPrice
    models: dict[str, ModelPrice] = Field(default_factory=dict)
    groups: dict[str, GroupTerms] = Field(default_factory=dict)

    def group(self, name: str) -> GroupTerms:
        return self.groups.get(name, GroupTerms())

    def quote(self, model: str, user_group: str, duration_s: int) -> Quote:
        price = self.models.get(model, self.default)
        units = duration_s if price.billing_rule == "per_second" else 1
        # Rounded up to a whole millicredit: a price never rounds down to free.
        amount = math.ceil(round(price.price * MILLI * units * self.group(user_group).multiplier, 6))
        return Quote(billing_rule=price.billing_rule, millicredits=amount)


@dataclass(frozen=True)
class Quote:
    billing_rule: BillingRule
    millicredits: int


class PricingError(ValueError):
    pass


def builtin_table(price_per_second_credits: float) -> PricingTable:
    return PricingTable(default=ModelPrice(billing_rule="per_second", price=price_per_second_credits))


def parse_table(text: str) -> PricingTable:
    try:
        return PricingTable.model_validate(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise PricingError(str(exc)) from None


@dataclass
class PricingSource:
    """The table in force. `current()` is called on every create; it costs one stat() of the file."""

    path: Path | None
    fallback: PricingTable
    _table: PricingTable = field(init=False)
    _stamp: tuple[float, int] | None = field(init=False, default=None)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._table = self.fallback
        if self.path is not None:
            try:
                self._stamp = self._stat()
                self._table = parse_table(self.path.read_text())
            except OSError as exc:
                raise PricingError(f"cannot read the pricing file {self.path}: {exc}") from None
            except PricingError as exc:
                raise PricingError(f"invalid pricing file {self.path}: {exc}") from None

    def _stat(self) -> tuple[float, int] | None:
        assert self.path is not None
        stat = os.stat(self.path)
        return stat.st_mtime, stat.st_size

    def current(self) -> PricingTable:
        if self.path is not None:
            try:
                stamp = self._stat()
            except OSError:
                stamp = self._stamp  # gone for a moment (an editor's rename): keep what we have
            if stamp != self._stamp:
                self.reload()
        return self._table

    def reload(self) -> bool:
        """Read the file again; True if a new table is in force."""
        if self.path is None:
            return False
        with self._lock:
            try:
                # Remembered even if the content is bad, so a broken file is reported once, not per request.
                self._stamp = self._stat()
                table = parse_table(self.path.read_text())
            except (OSError, PricingError) as exc:
                log.error("pricing file not reloaded; the previous table stays in force", extra={"error": str(exc)})
                return False
            self._table = table
        log.info("pricing table reloaded", extra={"path": str(self.path)})
        return True
