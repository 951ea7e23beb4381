"""A remote worker: the same engines and job runner as a database worker, holding only the API's URL and a
worker token. It claims by long poll, heartbeats, uploads and finishes over HTTPS; every call about a task
names its lease, so once the lease is gone (frozen, partitioned, revoked) nothing it sends changes anything.

The API may be unreachable for a while (a deploy, a network blip): calls are retried with backoff, and a
running task keeps heartbeating through short outages (its lease has slack for missed beats). A refused
token (revoked) stops the worker at its next call; its running jobs stop at their next heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import httpx

from reelgate import __version__
from reelgate.backoff import Backoff
from reelgate.engines.base import Engine
from reelgate.engines.relay.base import UpstreamRecord
from reelgate.logs import task_context
from reelgate.queue.context import JobResources
from reelgate.queue.jobs import run_claimed_task
from reelgate.queue.lease import ClaimedTask
from reelgate.queue.remote_schemas import (
    BeatAnswer,
    ClaimAnswer,
    ClaimedView,
    Outcome,
    Registered,
    UploadTarget,
)
from reelgate.queue.repository import Fence
from reelgate.storage.base import ObjectMissing

log = logging.getLogger(__name__)

# A worker waits for work at most this long per call (the API caps it at 30 s).
CLAIM_WAIT_S = 25.0
_RETRY = Backoff(first_s=0.5, factor=2.0, max_s=10.0)
_TRANSIENT_STATUSES = {429, 500, 502, 503, 504}


class TokenRefused(Exception):
    """The API refused the worker token (401/403): revoked, or not a worker token at all."""


class LeaseGone(Exception):
    """The API answered 409: the lease this call was made under is gone."""


class RemoteRefused(Exception):
    """Another 4xx: the call itself is wrong (a bug on one side); not retried."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class WorkerApi:
    """The worker routes of one API, with the worker token."""

    def __init__(self, base_url: str, token: str, *, verify: Any = True, timeout_s: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout_s, verify=verify, headers={"User-Agent": f"reelgate/{__version__}"}
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    async def call(
        self, method: str, path: str, *, json: Any = None, timeout_s: float | None = None, retry_for_s: float = 300.0
    ) -> Any:
        """One call, retried while the API is unreachable or busy for up to `retry_for_s`."""
        deadline = time.monotonic() + retry_for_s
        failures = 0
        while True:
            try:
                response = await self._http.request(
                    method,
                    path,
                    json=json,
                    headers=self._auth(),
                    timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code not in _TRANSIENT_STATUSES:
                    return _answer(response)
                problem = f"HTTP {response.status_code}"
            failures += 1
            delay_s = _RETRY.delay_s(failures)
            if time.monotonic() + delay_s > deadline:
                raise ConnectionError(f"the API at {self.base_url} did not answer {method} {path}: {problem}")
            log.warning("the API did not answer; retrying", extra={"call": f"{method} {path}", "problem": problem})
            await asyncio.sleep(delay_s)

    async def download(self, url: str, *, max_bytes: int) -> bytes:
        """An input from the link the claim gave (our own API or our bucket: trusted, not the egress client's
        business); ObjectMissing when it is gone."""
        async with self._http.stream("GET", url) as response:
            if response.status_code == 404:
                raise ObjectMissing(url)
            response.raise_for_status()
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise ValueError(f"a stored input is larger than {max_bytes} bytes")
                chunks.append(chunk)
        return b"".join(chunks)

    async def upload(self, target: UploadTarget, video: Path) -> None:
        headers = {**target.headers, **(self._auth() if target.needs_token else {})}
        size = await asyncio.to_thread(lambda: video.stat().st_size)
        headers["Content-Length"] = str(size)

        async def chunks() -> Any:
            with video.open("rb") as handle:
                while chunk := await asyncio.to_thread(handle.read, 1 << 20):
                    yield chunk

        response = await self._http.put(target.url, content=chunks(), headers=headers, timeout=600.0)
        _answer(response)


def _answer(response: httpx.Response) -> Any:
    if response.status_code in (401, 403):
        raise TokenRefused(_message(response))
    if response.status_code == 409:
        raise LeaseGone(_message(response))
    if response.status_code >= 400:
        raise RemoteRefused(response.status_code, _message(response))
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


class RemoteLease:
    """The lease of a remote worker: every write is a call to the API, fenced by (task, attempt, owner)."""

    def __init__(self, api: WorkerApi, claimed: ClaimedTask, *, max_input_bytes: int) -> None:
        self.api = api
        self.claimed = claimed
        self._max_input_bytes = max_input_bytes
        self._cancelled = False
        # Why the API refused the token, when a beat of this lease learned it (the worker then stops).
        self.refused: str | None = None

    def _fence(self) -> dict[str, Any]:
        return {"attempt": self.claimed.fence.attempt, "lease_owner": self.claimed.fence.owner}

    def _path(self, action: str) -> str:
        return f"/worker/v1/tasks/{self.claimed.id}/{action}"

    async def heartbeat(self, *, progress: int, estimated_time_s: int, extra: dict[str, Any] | None) -> bool:
        body = {**self._fence(), "progress": progress, "estimated_time_s": estimated_time_s, **(extra or {})}
        try:
            # Bounded: a beat that cannot get through within a lease third is simply missed, not queued.
            answer = BeatAnswer.model_validate(
                await self.api.call("POST", self._path("heartbeat"), json=body, retry_for_s=5.0)
            )
        except TokenRefused as exc:
            self.refused = str(exc)
            return False
        self._cancelled = answer.cancelled
        return answer.alive

    async def read_stored_input(self, index: int, key: str) -> bytes:
        link = self.claimed.input_links.get(index)
        if link is None:
            raise ObjectMissing(key)
        return await self.api.download(link, max_bytes=self._max_input_bytes)

    async def record_upstream(self, record: UpstreamRecord) -> bool:
        body = {
            **self._fence(),
            "upstream": {
                "provider": record.provider,
                "task_id": record.task_id,
                "state": record.state,
                "submitted_at": record.submitted_at,
            },
        }
        return BeatAnswer.model_validate(await self.api.call("POST", self._path("upstream"), json=body)).alive

    async def was_cancelled(self) -> bool:
        return self._cancelled

    async def complete(self, video: Path, poster: Path | None, info: dict[str, object]) -> bool:
        try:
            if poster is not None:
                await self._upload("poster", poster)
            await self._upload("video", video)
            body = {**self._fence(), "info": info, "poster": poster is not None}
            await self.api.call("POST", self._path("complete"), json=body)
        except LeaseGone:
            return False
        return True

    async def _upload(self, stored: str, path: Path) -> None:
        answer = await self.api.call("POST", self._path("upload"), json={**self._fence(), "object": stored})
        await self.api.upload(UploadTarget.model_validate(answer), path)

    async def fail(self, code: str, message: str) -> bool:
        try:
            answer = await self.api.call(
                "POST", self._path("fail"), json={**self._fence(), "code": code, "message": message}
            )
        except LeaseGone:
            return False
        return Outcome.model_validate(answer).won

    async def retry_later(self, delay_s: float, *, spend_attempt: bool) -> bool:
        body = {**self._fence(), "delay_s": delay_s, "spend_attempt": spend_attempt}
        try:
            await self.api.call("POST", self._path("retry"), json=body)
        except LeaseGone:
            return False
        return True


def claimed_from(view: ClaimedView) -> ClaimedTask:
    lease, job = view.lease, view.job
    upstream = job.upstream
    return ClaimedTask(
        id=lease.task_id,
        fence=Fence(lease.attempt, lease.lease_owner),
        engine=job.engine,
        prompt=job.prompt,
        image_urls=job.image_urls,
        aspect_ratio=job.aspect_ratio,
        duration_s=job.duration_s,
        seed=job.seed,
        max_attempts=job.max_attempts,
        estimate_s=job.estimate_s,
        created_at=job.created_at,
        upstream=None
        if upstream is None
        else UpstreamRecord(upstream.provider, upstream.task_id, upstream.state, upstream.submitted_at),
        input_links=job.input_links,
    )


class RemoteWorker:
    def __init__(
        self, resources: JobResources, engines: dict[str, Engine], *, concurrency: int, api: WorkerApi
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.resources = resources
        self.engines = engines
        self.concurrency = concurrency
        self.api = api
        self.worker_id = ""
        self._running: dict[asyncio.Task[None], RemoteLease] = {}
        self._refused = asyncio.Event()
        self._refusal = "the worker token was refused"

    def _engines_json(self) -> dict[str, dict[str, object]]:
        return {
            name: {"available": (a := engine.availability()).ok, "reason": a.reason}
            for name, engine in self.engines.items()
        }

    async def _register(self) -> Registered:
        body = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "version": __version__,
            "engines": self._engines_json(),
            "concurrency": self.concurrency,
        }
        registered = Registered.model_validate(
            await self.api.call("POST", "/worker/v1/workers", json=body, retry_for_s=float("inf"))
        )
        self.worker_id = registered.worker_id
        log.info("registered with the API", extra={"worker_id": self.worker_id, "server": self.api.base_url})
        return registered

    async def run(self, stop: asyncio.Event) -> None:
        registered = await self._register()
        beat = asyncio.create_task(self._beat(stop, registered.heartbeat_s))
        try:
            await self._claim_loop(stop)
        except TokenRefused as exc:
            log.error("the API refused the worker token; stopping", extra={"reason": str(exc)})
            raise
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
            await self._shutdown()

    async def _beat(self, stop: asyncio.Event, every_s: float) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every_s)
            body = {"engines": self._engines_json(), "running": len(self._running)}
            try:
                await self.api.call(
                    "POST", f"/worker/v1/workers/{self.worker_id}/heartbeat", json=body, retry_for_s=every_s
                )
            except RemoteRefused as exc:
                if exc.status == 404:  # the registry forgot us (an operator, a reset): appear again
                    await self._register()
            except TokenRefused as exc:
                self._refuse(str(exc))
                return
            except ConnectionError:
                log.warning("worker heartbeat missed; the API is unreachable")

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and not self._refused.is_set():
            free = self.concurrency - len(self._running)
            engines = [name for name, engine in self.engines.items() if engine.availability().ok]
            if free <= 0 or not engines:
                await _first(stop.wait(), self._refused.wait(), timeout_s=1.0)
                continue
            body = {"worker_id": self.worker_id, "engines": engines, "slots": free, "wait_s": CLAIM_WAIT_S}
            call = asyncio.ensure_future(
                self.api.call(
                    "POST", "/worker/v1/claims", json=body, timeout_s=CLAIM_WAIT_S + 15, retry_for_s=float("inf")
                )
            )
            await _first(call, stop.wait(), self._refused.wait())
            if not call.done():
                call.cancel()
                await asyncio.gather(call, return_exceptions=True)
                break
            try:
                answer = ClaimAnswer.model_validate(call.result())
            except RemoteRefused as exc:
                if exc.status != 404:
                    raise
                await self._register()  # the registry forgot us: appear again, then claim
                continue
            for view in answer.data:
                self._start(claimed_from(view))
        if self._refused.is_set():
            raise TokenRefused(self._refusal)

    def _start(self, claimed: ClaimedTask) -> None:
        lease = RemoteLease(self.api, claimed, max_input_bytes=self.resources.settings.max_image_bytes)
        job = asyncio.create_task(self._run(lease))
        self._running[job] = lease
        job.add_done_callback(self._done)

    def _done(self, job: asyncio.Task[None]) -> None:
        lease = self._running.pop(job, None)
        if lease is not None and lease.refused is not None:
            self._refuse(lease.refused)

    def _refuse(self, why: str) -> None:
        self._refusal = why
        self._refused.set()

    async def _run(self, lease: RemoteLease) -> None:
        claimed = lease.claimed
        with task_context(claimed.id):
            log.info("claimed", extra={"attempt": claimed.fence.attempt, "engine": claimed.engine})
            try:
                await run_claimed_task(self.resources, lease, self.engines[claimed.engine])
            except (ConnectionError, TokenRefused, RemoteRefused):
                # Not even the failure could be told to the API: the lease runs out, and the task is re-run.
                log.exception("the job's outcome could not reach the API; its lease will run out")

    async def _shutdown(self) -> None:
        if self._running:
            log.info("waiting for running jobs", extra={"count": len(self._running)})
            await asyncio.gather(*self._running, return_exceptions=True)
        if self.worker_id and not self._refused.is_set():
            with contextlib.suppress(Exception):
                await self.api.call("DELETE", f"/worker/v1/workers/{self.worker_id}", retry_for_s=5.0)


async def _first(*waits: Any, timeout_s: float | None = None) -> None:
    """Wait until the first of these awaitables is done (or the timeout); the others are left as they are
    (futures) or cancelled (coroutines wrapped here)."""
    tasks = [w if isinstance(w, asyncio.Future) else asyncio.ensure_future(w) for w in waits]
    await asyncio.wait(tasks, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    for task, wait in zip(tasks, waits, strict=True):
        if task is not wait:
            task.cancel()
