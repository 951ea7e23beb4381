"""What the queue's workers and job runner need from the process they run in. `reelgate.resources.Resources`
provides it; the queue names only these protocols, so it never imports the layers above it."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.config import Settings
from reelgate.db.database import Database
from reelgate.db.models import Task
from reelgate.egress.client import EgressClient
from reelgate.metrics import Metrics
from reelgate.storage.base import Storage


class JobResources(Protocol):
    """What running a job needs, on any worker (a remote one has no database and no storage)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def egress(self) -> EgressClient: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def scratch_root(self) -> Path: ...


class QueueResources(JobResources, Protocol):
    """What a database worker needs besides: the database, the storage, and the hook that ends a task."""

    @property
    def db(self) -> Database: ...

    @property
    def storage(self) -> Storage: ...

    async def task_ended(self, session: AsyncSession, task: Task, now: float) -> None:
        """Settle the task's credits and enqueue its callback, in the transaction that ended it."""
        ...
