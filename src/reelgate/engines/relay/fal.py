"""fal's queue API for `fal-ai/kling-video/o1/image-to-video` (Kling O1 hosted by fal).

Protocol sources (fal docs, docs.fal.ai "Model endpoints > Queue" and the model's API page):
- `Authorization: Key <FAL_KEY>`.
- Submit `POST https://queue.fal.run/{model_id}` -> `{request_id, response_url, status_url, cancel_url}`.
- Status `GET .../requests/{request_id}/status` -> `{status: IN_QUEUE (with queue_position) | IN_PROGRESS |
  COMPLETED}`; result `GET .../requests/{request_id}`; cancel `PUT .../requests/{request_id}/cancel`, which
  "cancels a request that has not started processing" (202 CANCELLATION_REQUESTED, 400 ALREADY_COMPLETED).
- "subpath: some models expose different capabilities at different sub-paths ... the subpath should be used
  when making the request, but not when getting request status or results": the app is `fal-ai/kling-video`,
  `o1/image-to-video` its subpath, so status/result/cancel live under `/fal-ai/kling-video/requests/...`.
  We build those URLs ourselves from the configured base instead of following URLs from an answer.
- Model input: `prompt` (required), `start_image_url` (required), `end_image_url`, `duration` ("5" | "10"
  among 3-10); output `{video: {url, ...}}`. A base64 data URI is accepted wherever a file URL is.
- Failed requests answer the result GET with an error status and a `detail` (422 for validation, with
  `type` values such as `content_policy_violation`).

fal has no external id: a submit that was sent but never answered cannot be looked up. Such a task fails
with `service_unavailable` (credits released) rather than risk a second, billed run; the task row records
`submitting` before the request leaves, which is how a restarted worker knows.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from reelgate.config import Settings
from reelgate.egress.client import JsonResponse, NotSentError
from reelgate.egress.errors import BlockedAddressError, EgressError
from reelgate.engines.base import EngineResult, Job, JobCancelled
from reelgate.engines.relay.base import (
    RelayBase,
    RelayContext,
    TransientUpstreamError,
    UpstreamState,
    credential_fingerprint,
)
from reelgate.engines.relay.health import RelayRuntime
from reelgate.engines.relay.images import data_uri, framed_jpeg
from reelgate.errors import TaskErrorCode, TaskFailure

log = logging.getLogger(__name__)

APP_ID = "fal-ai/kling-video"
MODEL_PATH = f"{APP_ID}/o1/image-to-video"


class FalRelay(RelayBase):
    name = "fal"
    provider = "fal"

    def __init__(self, settings: Settings, runtime: RelayRuntime) -> None:
        self._base_url = settings.fal_base_url.rstrip("/")
        super().__init__(settings, runtime)

    def _credentials_missing(self) -> str | None:
        return None if self.settings.fal_key else "no fal credentials (REELGATE_FAL_KEY)"

    def _fingerprint(self) -> str:
        return credential_fingerprint(self.settings.fal_base_url, self.settings.fal_key)

    def submit_body(self, job: Job) -> dict[str, object]:
        body: dict[str, object] = {
            "prompt": job.prompt,
            "start_image_url": data_uri(framed_jpeg(job.images[0], job.aspect_ratio)),
            "duration": str(job.duration_s),
        }
        if len(job.images) > 1:
            body["end_image_url"] = data_uri(framed_jpeg(job.images[1], job.aspect_ratio))
        return body

    def request_url(self, request_id: str, suffix: str = "") -> str:
        return f"{self._base_url}/{APP_ID}/requests/{request_id}{suffix}"

    async def call(self, ctx: RelayContext, method: str, url: str, body: object | None = None) -> JsonResponse:
        async with self.slots():
            response = await ctx.egress.request_json(
                method,
                url,
                headers={"Authorization": f"Key {self.settings.fal_key}"},
                timeout_s=self.request_timeout_s,
                body=body,
            )
        if response.status in (401, 403):
            raise self.auth_refused(f"HTTP {response.status}")
        if response.status >= 500:
            raise TransientUpstreamError(f"fal answered HTTP {response.status}")
        return response

    async def run_relay(self, job: Job, ctx: RelayContext, output_path: Path) -> EngineResult:
        request_id = self.stored_upstream_id(ctx)
        if self.submit_left_unanswered(ctx):
            raise TaskFailure(
                TaskErrorCode.SERVICE_UNAVAILABLE,
                "An earlier submit to fal got no answer and fal cannot be asked about it; not submitted again "
                "to avoid a second charge. Credits were released",
            )
        if request_id is None:
            request_id = await self.submit(job, ctx)
        return await self.poll(ctx, request_id, output_path, self.estimate_seconds(job.duration_s))

    async def submit(self, job: Job, ctx: RelayContext) -> str:
        body = self.submit_body(job)
        problem = "no answer"
        async for _attempt in self.attempts(ctx):
            await self.record_submitting(ctx)
            try:
                response = await self.call(ctx, "POST", f"{self._base_url}/{MODEL_PATH}", body)
            except (NotSentError, BlockedAddressError, TransientUpstreamError) as exc:
                # Nothing left, or fal answered that it failed: a retry cannot make a second job.
                problem = exc.message if isinstance(exc, EgressError) else str(exc)
                self.health.record_failure()
                continue
            except EgressError as exc:
                self.health.record_failure()
                raise TaskFailure(
                    TaskErrorCode.SERVICE_UNAVAILABLE,
                    f"fal did not answer the submit ({exc.message}); not submitted again to avoid a second charge. "
                    "Credits were released",
                ) from None
            if response.status == 429:
                await self.update(ctx, state=None, submitted_at=None)
                raise self.busy(ctx, "HTTP 429")
            if response.status >= 400:
                raise _result_failure(response)
            request_id = response.body.get("request_id") if isinstance(response.body, dict) else None
            if not isinstance(request_id, str) or not request_id or "/" in request_id:
                raise TaskFailure(TaskErrorCode.SERVICE_ERROR, "fal accepted the submit without a usable request_id")
            self.health.record_success()
            await self.update(ctx, task_id=request_id, state=UpstreamState.QUEUED)
            log.info("submitted upstream", extra={"upstream": self.provider, "upstream_task_id": request_id})
            return request_id
        raise TaskFailure(TaskErrorCode.SERVICE_UNAVAILABLE, f"fal is unavailable ({problem}); credits were released")

    async def cancel_upstream(self, ctx: RelayContext, request_id: str) -> None:
        """Our task was cancelled: ask fal to drop the request (it can while IN_QUEUE)."""
        try:
            response = await self.call(ctx, "PUT", self.request_url(request_id, "/cancel"))
        except (EgressError, TransientUpstreamError, TaskFailure) as exc:
            log.warning("fal cancel failed", extra={"upstream_task_id": request_id, "error": str(exc)})
            return
        status = response.body.get("status") if isinstance(response.body, dict) else None
        log.info(
            "fal cancel answered",
            extra={"upstream_task_id": request_id, "http_status": response.status, "fal_status": str(status)},
        )

    async def poll(self, ctx: RelayContext, request_id: str, output_path: Path, estimate_s: float) -> EngineResult:
        delay_s = self.settings.relay_poll_initial_s
        failures = 0
        running_since: float | None = None
        while True:
            if ctx.cancelled():
                if await ctx.cancelled_by_user():
                    await self.cancel_upstream(ctx, request_id)
                raise JobCancelled
            self.check_deadline(ctx.upstream)
            try:
                response = await self.call(ctx, "GET", self.request_url(request_id, "/status"))
                if response.status >= 400 or not isinstance(response.body, dict):
                    raise TransientUpstreamError(f"fal status answered HTTP {response.status}")
            except (EgressError, TransientUpstreamError) as exc:
                failures += 1
                self.health.record_failure()
                if failures > self.settings.relay_upstream_retries:
                    problem = exc.message if isinstance(exc, EgressError) else str(exc)
                    raise TaskFailure(
                        TaskErrorCode.SERVICE_UNAVAILABLE, f"fal stopped answering ({problem}); credits were released"
                    ) from None
                await self.wait(ctx, delay_s)
                delay_s = self.poll_backoff.after(delay_s)
                continue
            failures = 0
            self.health.record_success()
            status = response.body.get("status")
            if status == "IN_QUEUE":
                await self.update(ctx, state=UpstreamState.QUEUED)
                # fal tells the position, not how fast the queue moves: no invented progress, the whole estimate left.
                ctx.report_progress(0.0, max(1, round(estimate_s)))
            elif status == "IN_PROGRESS":
                await self.update(ctx, state=UpstreamState.RUNNING)
                running_since = running_since or time.time()
                elapsed = time.time() - running_since
                ctx.report_progress(min(0.9, elapsed / estimate_s), max(1, round(estimate_s - elapsed)))
            elif status == "COMPLETED":
                await self.update(ctx, state=UpstreamState.DONE)
                url = await self.result_url(ctx, request_id)
                return await self.copy_result(ctx, url, output_path, {"upstream_task_id": request_id})
            else:
                log.warning("unknown fal status; polling on", extra={"fal_status": str(status)[:40]})
            await self.wait(ctx, delay_s)
            delay_s = self.poll_backoff.after(delay_s)

    async def result_url(self, ctx: RelayContext, request_id: str) -> str:
        problem = "no answer"
        async for _attempt in self.attempts(ctx):
            try:
                response = await self.call(ctx, "GET", self.request_url(request_id))
            except (EgressError, TransientUpstreamError) as exc:
                problem = exc.message if isinstance(exc, EgressError) else str(exc)
                continue
            if response.status >= 400:
                raise _result_failure(response)
            video = response.body.get("video") if isinstance(response.body, dict) else None
            url = video.get("url") if isinstance(video, dict) else None
            if isinstance(url, str) and url.startswith(("https://", "http://")):
                return url
            raise TaskFailure(TaskErrorCode.GENERATION_FAILED_NO_CONTENT, "fal finished without a video")
        raise TaskFailure(
            TaskErrorCode.SERVICE_UNAVAILABLE, f"fal's result could not be fetched ({problem}); credits were released"
        )


def _result_failure(response: JsonResponse) -> TaskFailure:
    """fal's error answer (`{"detail": "..."}` or `{"detail": [{"msg", "type", "loc"}]}`) as a business code."""
    detail: Any = response.body.get("detail") if isinstance(response.body, dict) else None
    types: list[str] = []
    messages: list[str] = []
    if isinstance(detail, list):
        for item in detail:
            if isinstance(item, dict):
                types.append(str(item.get("type", "")))
                messages.append(str(item.get("msg", "")))
    elif detail is not None:
        messages.append(str(detail))
    message = "; ".join(m for m in messages if m)[:500] or f"HTTP {response.status}"
    if any("content_policy" in kind for kind in types) or "content_policy" in message:
        return TaskFailure(TaskErrorCode.CONTENT_POLICY_VIOLATION, f"fal: {message}")
    if response.status == 422:
        return TaskFailure(TaskErrorCode.INVALID_PARAMETERS, f"fal: {message}")
    return TaskFailure(TaskErrorCode.SERVICE_ERROR, f"fal: {message}")
