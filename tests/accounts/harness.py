"""An app on a real database with its event loop reachable from sync test code (TestClient's portal), so a test
can drive the HTTP API and the worker-side service calls against the same Resources."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from fastapi.testclient import TestClient

from reelgate.accounts import service as accounts
from reelgate.accounts.credits import to_millicredits
from reelgate.accounts.repository import KeyLimits
from reelgate.app import create_app
from reelgate.config import DEFAULT_MODEL, Settings
from reelgate.db.models import Account
from reelgate.resources import Resources
from reelgate.tasks.audit import AuditReport, audit
from tests.conftest import advertise_worker
from tests.images import astronaut, data_uri

T = TypeVar("T")
SMALL_IMAGE = data_uri(astronaut()[:64, :64], "JPEG")


def create_body(duration: int = 5, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": DEFAULT_MODEL,
        "prompt": "slow push in",
        "image_urls": [SMALL_IMAGE],
        "duration": duration,
    }
    body.update(overrides)
    return body


class Harness:
    def __init__(self, client: TestClient) -> None:
        self.client = client

    @property
    def resources(self) -> Resources:
        resources: Resources = self.client.app.state.resources  # type: ignore[attr-defined]
        return resources

    def call(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine on the app's own event loop (its database pool lives there)."""
        assert self.client.portal is not None
        return self.client.portal.call(work)

    def new_key(
        self, *, credits: float, user_group: str = "default", limits: KeyLimits | None = None
    ) -> tuple[str, str]:
        """(key, account id) on a fresh account."""

        async def work() -> tuple[str, str]:
            async with self.resources.db.transaction() as session:
                new_key, _, account = await accounts.create_key(
                    session,
                    name=f"t-{uuid.uuid4().hex[:6]}",
                    user_group=user_group,
                    credits_millicredits=to_millicredits(credits),
                    limits=limits,
                )
                return new_key.plaintext, account.id

        return self.call(work)

    def account(self, account_id: str) -> Account:
        async def work() -> Account:
            async with self.resources.db.read() as session:
                return await accounts.require_account(session, account_id)

        return self.call(work)

    def audit(self, account_id: str | None = None) -> AuditReport:
        async def work() -> AuditReport:
            async with self.resources.db.read() as session:
                return await audit(session, account_id=account_id)

        return self.call(work)


@contextmanager
def harness(settings: Settings) -> Iterator[Harness]:
    """The API alone; the test plays the worker, so a worker that claims nothing stands in the registry."""
    advertise_worker(settings)
    with TestClient(create_app(settings, workers=0), raise_server_exceptions=False) as client:
        yield Harness(client)
