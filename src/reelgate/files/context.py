"""What the files use cases need from the service they run in (`reelgate.resources.Resources` provides it)."""

from __future__ import annotations

from typing import Protocol

from reelgate.accounts.pricing import PricingSource
from reelgate.config import Settings
from reelgate.db.database import Database
from reelgate.egress.client import EgressClient
from reelgate.storage.base import Storage
from reelgate.storage.links import LinkSigner


class FilesResources(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def db(self) -> Database: ...

    @property
    def storage(self) -> Storage: ...

    @property
    def links(self) -> LinkSigner: ...

    @property
    def egress(self) -> EgressClient: ...

    @property
    def pricing(self) -> PricingSource: ...
