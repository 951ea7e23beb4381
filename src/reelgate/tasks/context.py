"""What the task use cases need from the service they run in (`reelgate.resources.Resources` provides it)."""

from __future__ import annotations

from typing import Protocol

from reelgate.accounts.pricing import PricingSource
from reelgate.config import Settings
from reelgate.db.database import Database
from reelgate.engines.registry import EngineRegistry
from reelgate.storage.base import Storage


class TasksResources(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def db(self) -> Database: ...

    @property
    def registry(self) -> EngineRegistry: ...

    @property
    def pricing(self) -> PricingSource: ...

    @property
    def storage(self) -> Storage: ...

    async def serving_engines(self) -> set[str]:
        """The engines some live worker advertises as available (queue/registry.py)."""
        ...
