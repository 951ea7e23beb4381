"""The event stream of a task (`GET /v1/tasks/{id}/events`, docs/events.md): an event for every progress or
status change, the whole task object on the terminal event, resumable with `Last-Event-ID`.

A task may run in any process, so changes are read from the database, by one `TaskWatcher` per process (held
by `Resources`): every tick it reads all the tasks that streams are watching in one query and fans the changes
out to their streams, so a thousand open streams cost what one does. A tick comes from a commit in this
process (db/notify.py wake-ups), from a NOTIFY of another process on PostgreSQL (every write that changes a
task's status or progress sends one, with the task id), or from the poll: every `events_poll_interval_s` on
SQLite, where nothing crosses processes, and ten times slower on PostgreSQL, as the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from reelgate.accounts.service import KeyFields
from reelgate.config import Settings
from reelgate.db.database import Database
from reelgate.db.notify import listen
from reelgate.queue import TASK_EVENTS_CHANNEL
from reelgate.queue.states import UNFINISHED, TaskStatus
from reelgate.tasks import repository
from reelgate.tasks.context import TasksResources
from reelgate.tasks.repository import TaskProgress
from reelgate.tasks.service import TaskLike, task_object, visible_task_row

log = logging.getLogger(__name__)

# Notifications arrive in bursts (many workers' heartbeats): one read serves all that came in this long.
_COALESCE_S = 0.05
# PostgreSQL notifies every change; its poll only catches a notification lost while reconnecting.
_NOTIFIED_POLL_FACTOR = 10
_ERROR_WAIT_S = 1.0


def _phase(status: str) -> int:
    return 0 if status == TaskStatus.PENDING else 1 if status == TaskStatus.PROCESSING else 2


def event_id(state: TaskProgress) -> str:
    """`attempt.phase.progress`: changes exactly when what a stream shows changes (status or progress), and
    grows while an attempt runs. A client that resumes with it is sent only what it has not seen."""
    return f"{state.attempt}.{_phase(state.status)}.{state.progress}"


def is_terminal(state: TaskProgress) -> bool:
    return state.status not in UNFINISHED


def progress_of(task: TaskLike) -> TaskProgress:
    return TaskProgress(task.id, task.status, task.progress, task.estimated_time_s, task.attempt)


@dataclass(eq=False)  # compared and hashed by identity: each stream is its own subscriber
class Subscription:
    """One stream's view of its task: the latest state the watcher read, and the full row once it ended."""

    task_id: str
    state: TaskProgress
    ended: TaskLike | None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _watcher: TaskWatcher | None = None

    def update(self, state: TaskProgress, ended: TaskLike | None) -> None:
        if state != self.state or ended is not None:
            self.state, self.ended = state, ended or self.ended
            self.changed.set()

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.unsubscribe(self)
            self._watcher = None


class TaskWatcher:
    """The process's one reader of streamed tasks (see the module's docstring)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._notified: set[str] = set()
        self._runner: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        # Reads made by the watcher (one per tick that had anything to read): what the tests count.
        self.reads = 0

    @property
    def watched(self) -> int:
        return len(self._subscriptions)

    def subscribe(self, task: TaskLike) -> Subscription:
        subscription = Subscription(task.id, progress_of(task), task if task.status not in UNFINISHED else None)
        subscription._watcher = self
        self._subscriptions.setdefault(task.id, set()).add(subscription)
        self._start()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        watchers = self._subscriptions.get(subscription.task_id)
        if watchers is None:
            return
        watchers.discard(subscription)
        if not watchers:
            del self._subscriptions[subscription.task_id]

    def _start(self) -> None:
        if self._runner is not None and not self._runner.done():
            return
        self._stop = asyncio.Event()
        self._runner = asyncio.create_task(self._run())
        if not self.db.is_sqlite:
            self._listener = asyncio.create_task(
                listen(
                    self.db.url,
                    TASK_EVENTS_CHANNEL,
                    self._wake,
                    self._stop,
                    on_payload=self._notified.add,
                    # Anything may have changed while the listener was away: look at every watched task.
                    connected=self._wake.set,
                )
            )

    def _poll_s(self) -> float:
        poll_s = self.settings.events_poll_interval_s
        return poll_s if self.db.is_sqlite else poll_s * _NOTIFIED_POLL_FACTOR

    async def _run(self) -> None:
        unsubscribe = self.db.wakeups.subscribe(TASK_EVENTS_CHANNEL, self._wake)
        try:
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll_s())
                if self._stop.is_set():
                    return
                await asyncio.sleep(_COALESCE_S)
                self._wake.clear()
                try:
                    await self.refresh()
                except Exception:
                    log.warning("event stream watcher could not read the tasks; retrying", exc_info=True)
                    await asyncio.sleep(_ERROR_WAIT_S)
        finally:
            unsubscribe()

    async def refresh(self) -> None:
        """One read of every watched task, and one more of the full rows of those that just ended."""
        self._notified.clear()
        ids = list(self._subscriptions)
        if not ids:
            return
        self.reads += 1
        async with self.db.read() as session:
            states = await repository.task_progress(session, ids)
            newly_ended = [
                state.id
                for state in states
                if is_terminal(state) and any(sub.ended is None for sub in self._subscriptions.get(state.id, ()))
            ]
            rows = {row.id: row for row in await repository.get_tasks(session, newly_ended)} if newly_ended else {}
        for state in states:
            for subscription in list(self._subscriptions.get(state.id, ())):
                subscription.update(state, rows.get(state.id))

    async def aclose(self) -> None:
        self._stop.set()
        self._wake.set()
        for task in (self._runner, self._listener):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._runner = self._listener = None


@dataclass(frozen=True)
class TaskEvent:
    """One event of the stream: its id (for Last-Event-ID), its name and its JSON data."""

    id: str
    event: str
    data: dict[str, Any]


class WatchingResources(TasksResources, Protocol):
    @property
    def task_watcher(self) -> TaskWatcher: ...


async def open_stream(
    resources: WatchingResources, key: KeyFields, task_id: str, *, last_event_id: str | None
) -> AsyncIterator[TaskEvent]:
    """Same checks as `GET /v1/tasks/{id}` (a 400 or 404 before any event), then the stream's events."""
    task = await visible_task_row(resources, key, task_id)
    subscription = resources.task_watcher.subscribe(task)
    return _events(resources, subscription, last_event_id)


async def _events(
    resources: WatchingResources, subscription: Subscription, last_event_id: str | None
) -> AsyncIterator[TaskEvent]:
    sent = last_event_id
    try:
        while True:
            # Cleared before reading, so a change that lands while this event is sent is kept for the wait.
            subscription.changed.clear()
            state, ended = subscription.state, subscription.ended
            terminal = is_terminal(state) and ended is not None
            current = event_id(state)
            # The terminal event is always sent, even to a client that says it saw it: the stream ends with it.
            if current != sent or terminal:
                data: dict[str, Any] = {
                    "task_id": state.id,
                    "status": state.status,
                    "progress": state.progress,
                    "estimated_time": state.estimated_time_s if not is_terminal(state) else 0,
                }
                if terminal and ended is not None:
                    data["task"] = task_object(
                        ended, storage=resources.storage, settings=resources.settings
                    ).model_dump(mode="json", exclude_none=True)
                yield TaskEvent(id=current, event=state.status if terminal else "progress", data=data)
                sent = current
            if terminal:
                return
            await subscription.changed.wait()
    finally:
        subscription.close()
