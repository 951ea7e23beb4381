"""Kling's official API, Omni-Video (model `kling-video-o1`).

Protocol sources (Kling API docs, app.klingai.com/global/dev/document-api; mirrored in public repositories):
- "General Information": host https://api-singapore.klingai.com; `Authorization: Bearer <JWT>` (jwt.py); the
  envelope `{code, message, request_id, data}` where code 0 = success; the service codes 1000-1004 (401,
  authentication), 1100-1103 (account: 1102 = resource pack depleted), 1200-1203 (parameters, 404 resource),
  1300/1301 (platform / content security policy), 1302 (rate), 1303 (concurrency over the resource pack),
  1304 (IP whitelist), 5000-5002 (server error / unavailable / timeout); task statuses submitted, processing,
  succeed, failed with `task_status_msg`.
- "Omni-Video": `POST /v1/videos/omni-video` with `model_name`, `prompt` (at most 2500 characters),
  `image_list[{image_url, type: first_frame|end_frame}]` where image_url is "URL or base64 (no prefix)",
  `mode` std|pro, `duration` as a string, `external_task_id` ("custom task ID, unique per account"),
  `aspect_ratio` (only needed without a first frame, so not sent); `GET /v1/videos/omni-video/{task_id}`;
  the answer's `data{task_id, task_status, task_status_msg, task_info{external_task_id},
  task_result{videos[{id, url, duration}]}}`.
- "Query Task (Single)": a task can be looked up by `task_id` or by `external_task_id` ("choose one of the
  two"); the docs do not show where the external id goes, so it is sent as the `external_task_id` query
  parameter and the answer is accepted as one task or as a list, matched on `task_info.external_task_id`.

Images are sent as base64 (the documented alternative to a URL): no public link of ours has to exist.
Kling's `callback_url` is not used: polling alone is authoritative, and its callbacks are unsigned.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from reelgate.config import Settings
from reelgate.egress.client import NotSentError
from reelgate.egress.errors import BlockedAddressError, EgressError
from reelgate.engines.base import EngineResult, Job, JobCancelled
from reelgate.engines.relay.base import (
    RelayBase,
    RelayContext,
    RetryLater,
    TransientUpstreamError,
    UpstreamState,
    credential_fingerprint,
)
from reelgate.engines.relay.health import RelayRuntime
from reelgate.engines.relay.images import framed_jpeg, raw_base64
from reelgate.engines.relay.jwt import KlingToken
from reelgate.errors import TaskErrorCode, TaskFailure

log = logging.getLogger(__name__)

MODEL_NAME = "kling-video-o1"
TASKS_PATH = "/v1/videos/omni-video"
MAX_PROMPT_CHARS = 2500

AUTH_CODES = range(1000, 1005)
BUSY_CODES = {1302: "rate limit", 1303: "concurrency limit of the resource pack"}
QUOTA_CODES = {1101, 1102}
ACCOUNT_CODES = {1100, 1103, 1304}
CONTENT_CODES = {1300, 1301}
PARAMETER_CODES = {1200, 1201}
NOT_FOUND_CODES = {1202, 1203}
# Words of a failed task's `task_status_msg` that name a content-safety refusal.
_CONTENT_WORDS = ("risk", "safety", "security", "sensitive", "policy", "violat", "inappropriate", "prohibit")


@dataclass(frozen=True)
class KlingAnswer:
    http_status: int
    code: int
    message: str
    data: Any


def classify_failure(message: str) -> TaskErrorCode:
    lowered = message.lower()
    if any(word in lowered for word in _CONTENT_WORDS):
        return TaskErrorCode.CONTENT_POLICY_VIOLATION
    return TaskErrorCode.GENERATION_FAILED_NO_CONTENT


class KlingRelay(RelayBase):
    name = "kling"
    provider = "kling"
    max_prompt_chars = MAX_PROMPT_CHARS

    def __init__(self, settings: Settings, runtime: RelayRuntime) -> None:
        self._token = KlingToken(settings.kling_access_key, settings.kling_secret_key)
        self._base_url = settings.kling_base_url.rstrip("/")
        super().__init__(settings, runtime)

    def _credentials_missing(self) -> str | None:
        s = self.settings
        if not s.kling_access_key or not s.kling_secret_key:
            return "no Kling credentials (REELGATE_KLING_ACCESS_KEY, REELGATE_KLING_SECRET_KEY)"
        return None

    def _fingerprint(self) -> str:
        return credential_fingerprint(self.settings.kling_base_url, self.settings.kling_access_key)

    # -- the protocol -------------------------------------------------------------------------------------------

    def submit_body(self, job: Job) -> dict[str, object]:
        kinds = ["first_frame", "end_frame"]
        images = [
            {"image_url": raw_base64(framed_jpeg(pixels, job.aspect_ratio)), "type": kinds[index]}
            for index, pixels in enumerate(job.images[:2])
        ]
        return {
            "model_name": MODEL_NAME,
            "prompt": job.prompt,
            "image_list": images,
            "mode": self.settings.kling_mode,
            "duration": str(job.duration_s),
            "external_task_id": job.task_id,
        }

    async def call(self, ctx: RelayContext, method: str, path: str, body: object | None = None) -> KlingAnswer:
        """One request under the per-credential cap. Raises NotSentError/EgressError from the client, and
        TransientUpstreamError for answers that are not Kling's envelope or carry a 5xxx code."""
        async with self.slots():
            response = await ctx.egress.request_json(
                method,
                f"{self._base_url}{path}",
                headers={"Authorization": self._token.authorization()},
                timeout_s=self.request_timeout_s,
                body=body,
            )
        envelope = response.body
        code = envelope.get("code") if isinstance(envelope, dict) else None
        if not isinstance(code, int) or isinstance(code, bool):
            raise TransientUpstreamError(f"Kling answered HTTP {response.status} without its envelope")
        message = envelope.get("message") if isinstance(envelope, dict) else ""
        answer = KlingAnswer(response.status, code, str(message or ""), envelope.get("data"))
        if 5000 <= code < 6000 or (code != 0 and response.status >= 500):
            raise TransientUpstreamError(f"Kling server error {code}: {answer.message}")
        return answer

    def failure_for(self, ctx: RelayContext, answer: KlingAnswer) -> TaskFailure | RetryLater:
        """The documented meaning of a non-zero service code."""
        code, message = answer.code, answer.message or "no message"
        if code in AUTH_CODES:
            return self.auth_refused(f"code {code}: {message}")
        if code in BUSY_CODES:
            return self.busy(ctx, f"code {code}, {BUSY_CODES[code]}")
        if code in QUOTA_CODES:
            return TaskFailure(TaskErrorCode.QUOTA_EXCEEDED, f"Kling: {message} (code {code})")
        if code in CONTENT_CODES:
            return TaskFailure(TaskErrorCode.CONTENT_POLICY_VIOLATION, f"Kling: {message} (code {code})")
        if code in PARAMETER_CODES:
            return TaskFailure(TaskErrorCode.INVALID_PARAMETERS, f"Kling: {message} (code {code})")
        if code in ACCOUNT_CODES:
            return self.auth_refused(f"account problem, code {code}: {message}")
        if code in NOT_FOUND_CODES:
            return TaskFailure(TaskErrorCode.RESOURCE_NOT_FOUND, f"Kling: {message} (code {code})")
        return TaskFailure(TaskErrorCode.UNKNOWN_ERROR, f"Kling: {message} (code {code})")

    # -- the run ------------------------------------------------------------------------------------------------

    async def run_relay(self, job: Job, ctx: RelayContext, output_path: Path) -> EngineResult:
        upstream_id = self.stored_upstream_id(ctx)
        if self.submit_left_unanswered(ctx):
            # A submit of an earlier attempt left without an answer: ask Kling before sending another.
            upstream_id = await self.find_by_external_id(ctx, job.task_id)
        if upstream_id is None:
            upstream_id = await self.submit(job, ctx)
        return await self.poll(ctx, upstream_id, output_path, self.estimate_seconds(job.duration_s))

    async def submit(self, job: Job, ctx: RelayContext) -> str:
        body = self.submit_body(job)
        problem = "no answer"
        async for _attempt in self.attempts(ctx):
            await self.record_submitting(ctx)
            try:
                answer = await self.call(ctx, "POST", TASKS_PATH, body)
            except (NotSentError, BlockedAddressError) as exc:
                problem = exc.message
                self.health.record_failure()
                continue
            except EgressError as exc:
                # Sent, no answer: Kling may have accepted it. The external id tells, never a second submit.
                problem = exc.message
                self.health.record_failure()
                found = await self.find_by_external_id(ctx, job.task_id)
                if found is not None:
                    return found
                continue
            except TransientUpstreamError as exc:
                problem = str(exc)
                self.health.record_failure()
                continue
            if answer.code != 0:
                outcome = self.failure_for(ctx, answer)
                if isinstance(outcome, RetryLater):
                    await self.update(ctx, state=None, submitted_at=None)
                raise outcome
            task_id = answer.data.get("task_id") if isinstance(answer.data, dict) else None
            if not isinstance(task_id, str) or not task_id:
                problem = "Kling accepted the task without a task_id"
                found = await self.find_by_external_id(ctx, job.task_id)
                if found is not None:
                    return found
                continue
            self.health.record_success()
            await self.update(ctx, task_id=task_id, state=UpstreamState.QUEUED)
            log.info("submitted upstream", extra={"upstream": self.provider, "upstream_task_id": task_id})
            return task_id
        raise TaskFailure(TaskErrorCode.SERVICE_UNAVAILABLE, f"Kling is unavailable ({problem}); credits were released")

    async def find_by_external_id(self, ctx: RelayContext, external_id: str) -> str | None:
        """Kling's task for our task id, or None when Kling has none (then a submit is safe: Kling also refuses
        a second task with the same external id)."""
        problem = "no answer"
        async for _attempt in self.attempts(ctx):
            try:
                answer = await self.call(ctx, "GET", f"{TASKS_PATH}?external_task_id={quote(external_id, safe='')}")
            except (EgressError, TransientUpstreamError) as exc:
                problem = exc.message if isinstance(exc, EgressError) else str(exc)
                continue
            if answer.code in NOT_FOUND_CODES or answer.http_status == 404:
                return None
            if answer.code != 0:
                raise self.failure_for(ctx, answer)
            candidates = answer.data if isinstance(answer.data, list) else [answer.data]
            for candidate in candidates:
                if not isinstance(candidate, dict):
                    continue
                info = candidate.get("task_info")
                external = info.get("external_task_id") if isinstance(info, dict) else None
                task_id = candidate.get("task_id")
                if isinstance(task_id, str) and task_id and external in (None, external_id):
                    await self.update(ctx, task_id=task_id, state=UpstreamState.QUEUED)
                    log.info("found the upstream task by external id", extra={"upstream_task_id": task_id})
                    return task_id
            return None
        raise TaskFailure(
            TaskErrorCode.SERVICE_UNAVAILABLE,
            f"Could not learn whether Kling accepted the task ({problem}); credits were released",
        )

    async def poll(self, ctx: RelayContext, upstream_id: str, output_path: Path, estimate_s: float) -> EngineResult:
        delay_s = self.settings.relay_poll_initial_s
        failures = 0
        while True:
            if ctx.cancelled():
                log.info(
                    "stopped polling; Kling has no cancel, its task runs on", extra={"upstream_task_id": upstream_id}
                )
                raise JobCancelled
            self.check_deadline(ctx.upstream)
            try:
                answer = await self.call(ctx, "GET", f"{TASKS_PATH}/{quote(upstream_id, safe='')}")
            except (EgressError, TransientUpstreamError) as exc:
                failures += 1
                self.health.record_failure()
                if failures > self.settings.relay_upstream_retries:
                    problem = exc.message if isinstance(exc, EgressError) else str(exc)
                    raise TaskFailure(
                        TaskErrorCode.SERVICE_UNAVAILABLE, f"Kling stopped answering ({problem}); credits were released"
                    ) from None
                await self.wait(ctx, delay_s)
                delay_s = self.poll_backoff.after(delay_s)
                continue
            failures = 0
            if answer.code != 0:
                outcome = self.failure_for(ctx, answer)
                # Busy while polling is not a reason to resubmit: keep polling, slower.
                if not isinstance(outcome, RetryLater):
                    raise outcome
            else:
                self.health.record_success()
                data = answer.data if isinstance(answer.data, dict) else {}
                status = data.get("task_status")
                record = ctx.upstream
                started = record.submitted_at if record and record.submitted_at else time.time()
                elapsed = time.time() - started
                if status == "submitted":
                    await self.update(ctx, state=UpstreamState.QUEUED)
                    ctx.report_progress(0.0, max(1, round(estimate_s)))
                elif status == "processing":
                    await self.update(ctx, state=UpstreamState.RUNNING)
                    fraction = min(0.9, elapsed / estimate_s)
                    ctx.report_progress(fraction, max(1, round(estimate_s - elapsed)))
                elif status == "succeed":
                    url = _first_video_url(data)
                    if url is None:
                        raise TaskFailure(TaskErrorCode.GENERATION_FAILED_NO_CONTENT, "Kling finished without a video")
                    await self.update(ctx, state=UpstreamState.DONE)
                    return await self.copy_result(ctx, url, output_path, {"upstream_task_id": upstream_id})
                elif status == "failed":
                    message = str(data.get("task_status_msg") or "Kling could not generate the video")
                    raise TaskFailure(classify_failure(message), f"Kling: {message}")
                else:
                    log.warning("unknown Kling task status; polling on", extra={"task_status": str(status)[:40]})
            await self.wait(ctx, delay_s)
            delay_s = self.poll_backoff.after(delay_s)


def _first_video_url(data: dict[str, Any]) -> str | None:
    result = data.get("task_result")
    videos = result.get("videos") if isinstance(result, dict) else None
    if not isinstance(videos, list) or not videos or not isinstance(videos[0], dict):
        return None
    url = videos[0].get("url")
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None
