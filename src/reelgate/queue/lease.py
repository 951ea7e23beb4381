"""What a worker holds once it has claimed a task, whatever the kind of worker: the task's job, and a `Lease`
through which every write about the task goes, fenced by (task, attempt, lease owner).

A database worker writes the tasks table and the storage itself (queue/database_lease.py); a remote worker
asks the API over HTTPS to do the same writes for it (queue/remote.py). The job runner (queue/jobs.py) is the
same for both: it only ever talks to the lease.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from reelgate.db.models import Task
from reelgate.engines.relay.base import UpstreamRecord
from reelgate.queue.repository import Fence


@dataclass(frozen=True)
class ClaimedTask:
    id: str
    fence: Fence
    engine: str
    prompt: str
    # URLs, data URIs, or `stored:` references to objects in our storage (storage/keys.py).
    image_urls: list[str]
    aspect_ratio: str | None
    duration_s: int
    seed: int
    max_attempts: int
    estimate_s: int
    created_at: float = 0.0
    # The upstream record of a relay task (None if it never reached an upstream), as of the claim.
    upstream: UpstreamRecord | None = None
    # Where a remote worker downloads each stored input (index -> short-lived link); empty for a database
    # worker, which reads its storage itself.
    input_links: dict[int, str] = field(default_factory=dict)


def claimed_task(task: Task, fence: Fence, *, input_links: dict[int, str] | None = None) -> ClaimedTask:
    """The job of a task row just claimed under `fence`."""
    upstream = None
    if task.upstream_provider is not None:
        upstream = UpstreamRecord(
            task.upstream_provider, task.upstream_task_id, task.upstream_state, task.upstream_submitted_at
        )
    return ClaimedTask(
        id=task.id,
        fence=fence,
        engine=task.engine,
        prompt=task.prompt,
        image_urls=list(task.image_urls),
        aspect_ratio=task.aspect_ratio,
        duration_s=task.duration_s,
        seed=task.seed,
        max_attempts=task.max_attempts,
        estimate_s=task.estimated_time_s,
        created_at=task.created_at,
        upstream=upstream,
        input_links=input_links or {},
    )


class Lease(Protocol):
    claimed: ClaimedTask

    async def heartbeat(self, *, progress: int, estimated_time_s: int, extra: dict[str, Any] | None) -> bool:
        """Renew the lease and publish progress; False = the lease is gone."""
        ...

    async def read_stored_input(self, index: int, key: str) -> bytes:
        """The bytes of a stored input (storage.base.ObjectMissing when it is gone)."""
        ...

    async def record_upstream(self, record: UpstreamRecord) -> bool:
        """Record a relay's upstream state; False = the lease is gone."""
        ...

    async def was_cancelled(self) -> bool:
        """True if the task was cancelled by its owner (not merely re-leased after a lost lease)."""
        ...

    async def complete(self, video: Path, poster: Path | None, info: dict[str, object]) -> bool:
        """Store the video (and its poster, when one could be made) under this attempt's keys, then end the
        task as completed; False (and what was stored discarded) when the lease was lost first."""
        ...

    async def fail(self, code: str, message: str) -> bool:
        """End the task as failed with a business code; False if another writer ended it first."""
        ...

    async def retry_later(self, delay_s: float, *, spend_attempt: bool) -> bool:
        """Back to pending for `delay_s`. `spend_attempt=False`: an upstream was busy, which costs no attempt."""
        ...
