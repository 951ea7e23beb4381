"""All tables. Timestamps are float unix seconds (UTC) so SQLite and PostgreSQL compare them the same way.

Money is integer millicredits (1 credit = 1000) so sums never drift through floating point.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Double, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    __tablename__ = "api_keys"

    # The public half of the key (`rg_<id>_<secret>`): looked up by index, never secret.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # sha256 of the secret half; the key itself is shown once and never stored.
    secret_hash: Mapped[str] = mapped_column(String(64))
    balance_millicredits: Mapped[int] = mapped_column(BigInteger, default=0)
    user_group: Mapped[str] = mapped_column(String(64), default="default")
    created_at: Mapped[float] = mapped_column(Double)
    revoked_at: Mapped[float | None] = mapped_column(Double, nullable=True)


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    model: Mapped[str] = mapped_column(String(200))
    # The engine this task is routed to; workers claim only tasks of engines they run.
    engine: Mapped[str] = mapped_column(String(64))
    prompt: Mapped[str] = mapped_column(Text)
    image_urls: Mapped[list[str]] = mapped_column(JSON)
    aspect_ratio: Mapped[str | None] = mapped_column(String(8), nullable=True)
    duration_s: Mapped[int] = mapped_column(Integer)
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    seed: Mapped[int] = mapped_column(BigInteger)

    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    estimated_time_s: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)

    # Queue state: `attempt` fences every write of the worker that holds the lease.
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    available_at: Mapped[float] = mapped_column(Double)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Double, nullable=True)

    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)
    started_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Double, nullable=True)

    result_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    # What the engine says about how it served the task (method, size, frames), shown in task_info.
    result_info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    billing_rule: Mapped[str] = mapped_column(String(16))
    user_group: Mapped[str] = mapped_column(String(64))
    credits_reserved_millicredits: Mapped[int] = mapped_column(BigInteger)
    # held -> captured (completed) | released (failed, cancelled); settled exactly once, with the terminal state.
    credits_state: Mapped[str] = mapped_column(String(16))

    __table_args__ = (
        Index("ix_tasks_claim", "status", "engine", "available_at"),
        Index("ix_tasks_lease", "status", "lease_expires_at"),
        Index("ix_tasks_owner_created", "api_key_id", "created_at", "id"),
        Index("ix_tasks_finished", "finished_at"),
    )


class WebhookSecret(Base):
    """The key's Standard Webhooks secret (`whsec_...`). Kept in the clear: signing needs the secret itself."""

    __tablename__ = "webhook_secrets"

    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), primary_key=True)
    current_secret: Mapped[str] = mapped_column(String(64))
    # After a rotation the previous secret signs too (a second `v1,...` signature) until previous_valid_until.
    previous_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    previous_valid_until: Mapped[float | None] = mapped_column(Double, nullable=True)
    created_at: Mapped[float] = mapped_column(Double)
    rotated_at: Mapped[float | None] = mapped_column(Double, nullable=True)


class CallbackDelivery(Base):
    """The callback outbox: one row per attempt series (the task's outcome = series 1, each redelivery +1),
    written in the transaction that ends the task and leased by a deliverer like a task by a worker."""

    __tablename__ = "callback_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"))
    # The same on every attempt and every redelivery of the task's callback (receivers deduplicate on it).
    webhook_id: Mapped[str] = mapped_column(String(64))
    series: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    # Attempts with a recorded outcome; an attempt cut off by a crash is re-run under the same number.
    attempts: Mapped[int] = mapped_column(Integer)
    max_attempts: Mapped[int] = mapped_column(Integer)
    interruptions: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[float] = mapped_column(Double)
    lease_owner: Mapped[str | None] = mapped_column(String(160), nullable=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)
    finished_at: Mapped[float | None] = mapped_column(Double, nullable=True)

    __table_args__ = (
        Index("ux_callback_deliveries_task_series", "task_id", "series", unique=True),
        Index("ix_callback_deliveries_due", "state", "next_attempt_at"),
    )


class CallbackAttempt(Base):
    """The delivery log: one row per attempt, with what the receiver answered."""

    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("callback_deliveries.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    # When it was due, when it started and ended: the schedule as it really ran.
    scheduled_at: Mapped[float] = mapped_column(Double)
    started_at: Mapped[float] = mapped_column(Double)
    finished_at: Mapped[float] = mapped_column(Double)
    latency_s: Mapped[float | None] = mapped_column(Double, nullable=True)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    response_excerpt: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_callback_attempts_delivery", "delivery_id", "attempt"),)
