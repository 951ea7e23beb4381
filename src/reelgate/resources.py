"""The live handles built from Settings: database, storage, link signer, egress client, engines, metrics.

Built in the app's lifespan (or by a CLI command), never at import time, so tests build one per settings.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from reelgate.accounts.limits import RateLimiter, build_limiter
from reelgate.accounts.pricing import PricingSource, builtin_table
from reelgate.config import Settings
from reelgate.db.database import Database
from reelgate.egress.client import EgressClient
from reelgate.engines.registry import EngineRegistry, build_engines
from reelgate.metrics import Metrics
from reelgate.storage.links import LinkSigner
from reelgate.storage.local import LocalStorage

DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


def load_secret_key(settings: Settings) -> bytes:
    """The link-signing key: from settings, else generated once and kept beside the data it protects."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = settings.home / "secret_key"
    if not path.exists():
        settings.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def database_for(settings: Settings) -> Database:
    connect_args = {}
    if settings.database_schema and not settings.is_sqlite:
        connect_args = {"server_settings": {"search_path": settings.database_schema}}
    if settings.is_sqlite:
        settings.home.mkdir(parents=True, exist_ok=True)
    return Database(settings.resolved_database_url, connect_args=connect_args)


def pricing_source(settings: Settings) -> PricingSource:
    return PricingSource(settings.pricing_file, builtin_table(settings.price_per_second_credits))


def _egress_client(settings: Settings) -> EgressClient:
    return EgressClient(allow_private_networks=settings.allow_private_networks, ca_bundle=settings.egress_ca_bundle)


@dataclass
class Resources:
    settings: Settings
    db: Database
    storage: LocalStorage
    links: LinkSigner
    egress: EgressClient
    # Callbacks get an outbound client (and so a connection pool) of their own: slow receivers can never
    # hold the connections that image downloads of running tasks need.
    callback_egress: EgressClient
    registry: EngineRegistry
    metrics: Metrics
    scratch_root: Path
    pricing: PricingSource
    limiter: RateLimiter
    # Set by the API after a create commits, so in-process workers claim at once instead of at next poll.
    queue_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    # Set when a callback is written to the outbox (or a retry comes due), so the deliverer looks at once.
    callback_wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def build(cls, settings: Settings, *, metrics: Metrics | None = None) -> Resources:
        scratch_root = settings.home / "tmp"
        scratch_root.mkdir(parents=True, exist_ok=True)
        return cls(
            settings=settings,
            db=database_for(settings),
            storage=LocalStorage(settings.videos_dir),
            links=LinkSigner(load_secret_key(settings), settings.public_url or DEFAULT_PUBLIC_URL),
            egress=_egress_client(settings),
            callback_egress=_egress_client(settings),
            registry=EngineRegistry(build_engines(settings), settings.models),
            metrics=metrics or Metrics(),
            scratch_root=scratch_root,
            pricing=pricing_source(settings),
            limiter=build_limiter(settings.redis_url),
        )

    async def close(self) -> None:
        await self.limiter.aclose()
        await self.egress.aclose()
        await self.callback_egress.aclose()
        await self.db.dispose()
