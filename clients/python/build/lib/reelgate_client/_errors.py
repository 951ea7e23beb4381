"""The SDK's exceptions: one per error type of the API's envelope, all under `ReelgateError`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reelgate_client._types import Task


class ReelgateError(Exception):
    """Every error the SDK raises. `status` is the HTTP status of the answer (None when there was none)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        param: str | None = None,
        fallback_suggestion: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.param = param
        self.fallback_suggestion = fallback_suggestion
        self.headers: dict[str, str] = {k.lower(): v for k, v in (headers or {}).items()}
        self.body = body

    @property
    def retry_after_s(self) -> float | None:
        value = self.headers.get("retry-after")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None

    def __str__(self) -> str:
        where = f" ({self.param})" if self.param else ""
        status = f"{self.status} " if self.status is not None else ""
        return f"{status}{self.message}{where}"


class InvalidRequestError(ReelgateError):
    """400 `invalid_request_error`: a parameter is wrong (`param` names it)."""


class AuthenticationError(ReelgateError):
    """401 `authentication_error`: the API key is missing, unknown, expired or revoked."""


class InsufficientQuotaError(ReelgateError):
    """402 `insufficient_quota_error`: the account's credits do not cover the task."""


class PermissionDeniedError(ReelgateError):
    """403 `permission_error`: the key may not do this (a model it may not use, a full file quota)."""


class NotFoundError(ReelgateError):
    """404 `not_found_error`: an unknown, expired or foreign task or file, or an unknown model."""


class RateLimitError(ReelgateError):
    """429 `rate_limit_error`: over a rate or concurrency limit (retried first, honouring Retry-After)."""


class InternalServerError(ReelgateError):
    """500 `internal_server_error`."""


class UpstreamError(ReelgateError):
    """502 `upstream_error`: every upstream of the model is out (retried first)."""


class ServiceUnavailableError(ReelgateError):
    """503 `service_unavailable_error`: nothing can serve the request right now (retried first)."""


class APIConnectionError(ReelgateError):
    """The server could not be reached, or the connection broke (after the retries)."""


class TaskFailedError(ReelgateError):
    """A waited-for task ended as `failed`; `task` is the task object, `code` its business code."""

    def __init__(self, task: Task) -> None:
        error = task.error
        code = error.code if error is not None else "unknown_error"
        message = error.message if error is not None else "the task failed"
        super().__init__(f"task {task.id} failed: {code}: {message}", type="task_error")
        self.task = task
        self.code = code


class WaitTimeoutError(ReelgateError, TimeoutError):
    """A task did not end within the time given to wait for it; `task_id` names it (it may still finish)."""

    def __init__(self, task_id: str, timeout_s: float) -> None:
        super().__init__(f"task {task_id} did not end within {timeout_s:g} s")
        self.task_id = task_id


class WebhookVerificationError(ReelgateError):
    """A callback that is not ours: a missing or wrong signature, or a timestamp outside the tolerance."""


ERRORS_BY_STATUS: dict[int, type[ReelgateError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    402: InsufficientQuotaError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
    500: InternalServerError,
    502: UpstreamError,
    503: ServiceUnavailableError,
}


def error_from_answer(status: int, headers: Mapping[str, str], content: bytes) -> ReelgateError:
    """The exception for a non-2xx answer, from the contract's envelope (or, failing that, the files API's
    wrapper, or the bare status)."""
    body: Any = None
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = content.decode(errors="replace")
    envelope = body.get("error") if isinstance(body, dict) else None
    if isinstance(envelope, dict):
        message = str(envelope.get("message") or f"HTTP {status}")
        kind, param, suggestion = envelope.get("type"), envelope.get("param"), envelope.get("fallback_suggestion")
    else:
        message = str(body.get("msg")) if isinstance(body, dict) and body.get("msg") else f"HTTP {status}"
        kind = param = suggestion = None
    cls = ERRORS_BY_STATUS.get(status) or (InternalServerError if status >= 500 else InvalidRequestError)
    return cls(
        message,
        status=status,
        type=kind if isinstance(kind, str) else None,
        param=param if isinstance(param, str) else None,
        fallback_suggestion=suggestion if isinstance(suggestion, str) else None,
        headers=headers,
        body=body,
    )
