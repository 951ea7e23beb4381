"""Wire shapes of the delivery log: `GET /v1/tasks/{id}/callbacks` and `POST .../callbacks/redeliver`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from reelgate.db.models import CallbackAttempt, CallbackDelivery
from reelgate.webhooks.states import DeliveryState, ErrorKind

# Unix seconds with millisecond precision: enough to read the retry schedule from the log.
_DIGITS = 3


class CallbackAttemptError(BaseModel):
    kind: ErrorKind
    message: str


class CallbackAttemptView(BaseModel):
    attempt: int = Field(ge=1, description="1 = the first attempt; a series makes 4 at most")
    ok: bool = Field(description="True for a 2xx answer")
    status_code: int | None = Field(None, description="The receiver's HTTP status, when it answered")
    error: CallbackAttemptError | None = Field(None, description="Why the attempt failed, when it did")
    latency_ms: int | None = Field(None, ge=0, description="Request to answer (or failure)")
    response_excerpt: str | None = Field(None, description="The first characters of the receiver's answer")
    scheduled_at: float = Field(description="Unix time the attempt was due")
    started_at: float = Field(description="Unix time the attempt started")
    finished_at: float = Field(description="Unix time the attempt ended")


class CallbackDeliveryView(BaseModel):
    id: str
    object: Literal["callback.delivery"] = "callback.delivery"
    task_id: str
    webhook_id: str = Field(description="The `webhook-id` header: the same on every attempt and redelivery")
    series: int = Field(ge=1, description="1 = sent when the task ended; 2, 3... = redeliveries")
    state: DeliveryState
    url: str
    created_at: float
    next_attempt_at: float | None = Field(None, description="While pending: when the next attempt is due")
    finished_at: float | None = None
    attempts: list[CallbackAttemptView]


class CallbackDeliveryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CallbackDeliveryView] = Field(description="Newest series first")


def attempt_view(row: CallbackAttempt) -> CallbackAttemptView:
    error = None
    if row.error_kind is not None:
        error = CallbackAttemptError(kind=ErrorKind(row.error_kind), message=row.error_message or "")
    return CallbackAttemptView(
        attempt=row.attempt,
        ok=row.error_kind is None,
        status_code=row.status_code,
        error=error,
        latency_ms=round(row.latency_s * 1000) if row.latency_s is not None else None,
        response_excerpt=row.response_excerpt,
        scheduled_at=round(row.scheduled_at, _DIGITS),
        started_at=round(row.started_at, _DIGITS),
        finished_at=round(row.finished_at, _DIGITS),
    )


def delivery_view(row: CallbackDelivery, attempts: list[CallbackAttempt], *, url: str) -> CallbackDeliveryView:
    pending = row.state == DeliveryState.PENDING
    return CallbackDeliveryView(
        id=row.id,
        task_id=row.task_id,
        webhook_id=row.webhook_id,
        series=row.series,
        state=DeliveryState(row.state),
        url=url,
        created_at=round(row.created_at, _DIGITS),
        next_attempt_at=round(row.next_attempt_at, _DIGITS) if pending else None,
        finished_at=round(row.finished_at, _DIGITS) if row.finished_at is not None else None,
        attempts=[attempt_view(attempt) for attempt in attempts],
    )
