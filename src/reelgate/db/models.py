"""All tables. Timestamps are float unix seconds (UTC) so SQLite and PostgreSQL compare them the same way.

Money is integer millicredits (1 credit = 1000) so sums never drift through floating point.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Account(Base):
    """Who pays: holds the credits and belongs to a user group; has any number of API keys.

    `balance` and `held` are caches of the ledger (`credit_entries`), written in the same transaction as every
    entry: balance = grants + adjustments - captures, held = reserves - settlements. Spendable = balance - held.
    """

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    user_group: Mapped[str] = mapped_column(String(64))
    balance_millicredits: Mapped[int] = mapped_column(BigInteger)
    held_millicredits: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Double)


class ApiKey(Base):
    __tablename__ = "api_keys"

    # The public half of the key (`rg_<id>_<secret>`): looked up by index, never secret.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # sha256 of the secret half; the key itself is shown once and never stored.
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Double)
    revoked_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    # Nullable only because SQLite cannot add a NOT NULL reference to an existing table; every key created
    # since migration 0003 has one, and `credits audit` reports a key without one.
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), nullable=True)
    # Limits of this key; None = all models / the group's limit (pricing file) / the service default.
    allowed_models: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    rpm_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Reads (GET task, list, events, files) have a bucket of their own, so polling never spends creates.
    read_rpm_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_concurrent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    expires_at: Mapped[float | None] = mapped_column(Double, nullable=True)

    __table_args__ = (Index("ix_api_keys_account", "account_id"),)


class ApiKeyChanges(Base):
    """One row: a counter bumped in the transaction of every change that can make a cached key wrong (revoked,
    its limits or models changed). Each API process's key cache (accounts/key_cache.py) reads it at most
    every half second and forgets every key when it moved."""

    __tablename__ = "api_key_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)


class CreditEntry(Base):
    """The append-only ledger. Amounts are positive except `adjust`, which is signed.

    `dedupe_key` is `reserve:<task>` or `settle:<task>` (capture and release share it): the unique constraint
    lets the database itself refuse a second reserve or a second settlement of one task.
    """

    __tablename__ = "credit_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[str] = mapped_column(String(16))
    amount_millicredits: Mapped[int] = mapped_column(BigInteger)
    task_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    dedupe_key: Mapped[str | None] = mapped_column(String(96), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Double)

    __table_args__ = (
        UniqueConstraint("dedupe_key", name="uq_credit_entries_dedupe_key"),
        Index("ix_credit_entries_account", "account_id", "id"),
        Index("ix_credit_entries_task", "task_id"),
    )


class IdempotencyKey(Base):
    """An `Idempotency-Key` of a create: `in_progress` while the first request runs (expires_at = a short
    lock, so a crashed request frees it), then `done` with the answer, kept until expires_at (24 h)."""

    __tablename__ = "idempotency_keys"

    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    task_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float] = mapped_column(Double)

    __table_args__ = (Index("ix_idempotency_keys_expires", "expires_at"),)


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
    # The completed video's poster (a small JPEG of a representative frame), stored per attempt like the video;
    # None when the poster could not be made (the video is still served).
    poster_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    # What the engine says about how it served the task (method, size, frames), shown in task_info.
    result_info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    billing_rule: Mapped[str] = mapped_column(String(16))
    user_group: Mapped[str] = mapped_column(String(64))
    credits_reserved_millicredits: Mapped[int] = mapped_column(BigInteger)
    # held -> captured (completed) | released (failed, cancelled); settled exactly once, with the terminal state.
    credits_state: Mapped[str] = mapped_column(String(16))

    # Relay tasks (engines/relay): the upstream's task id, written in the fenced transaction that records the
    # submit and before anything else, so a re-claimed task resumes polling instead of submitting again.
    # `upstream_state` is "submitting" while a submit is in flight (outcome unknown until resolved), then the
    # upstream's own phase ("queued", "running", "done"), which also decides `can_cancel`.
    upstream_provider: Mapped[str | None] = mapped_column(String(16), nullable=True)
    upstream_task_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    upstream_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    upstream_submitted_at: Mapped[float | None] = mapped_column(Double, nullable=True)

    # True once the expiry sweep deleted the task's stored objects (its video, its stored input images): the
    # sweep looks only at rows where this is still false.
    purged: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        Index("ix_tasks_claim", "status", "engine", "available_at"),
        Index("ix_tasks_lease", "status", "lease_expires_at"),
        Index("ix_tasks_owner_created", "api_key_id", "created_at", "id"),
        Index("ix_tasks_finished", "finished_at"),
        Index("ix_tasks_purge", "purged", "finished_at"),
    )


class UploadedFile(Base):
    """A file uploaded through the files API (`/api/v1/files/...`): an image kept in storage for a task's
    `image_urls`, owned by an account (its quota) and gone after `expires_at`. A deleted or expired row stays
    until its expiry passes, so a create naming it can say exactly why it cannot be used."""

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    storage_key: Mapped[str] = mapped_column(String(256))
    file_name: Mapped[str] = mapped_column(String(255))
    original_name: Mapped[str] = mapped_column(String(255))
    upload_path: Mapped[str] = mapped_column(String(255))
    mime_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float] = mapped_column(Double)
    deleted_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    # True once the stored object is deleted (after a delete or the expiry); the sweep looks only at the others.
    purged: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        Index("ix_files_account_created", "account_id", "created_at"),
        Index("ix_files_purge", "purged", "expires_at"),
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


class Worker(Base):
    """A worker process that claims tasks: `serve`'s in-process worker, `reelgate worker`, or a remote worker.
    It registers at start, heartbeats `last_seen_at` and its running count, and deletes its row on a clean
    stop; a row not seen within REELGATE_WORKER_TTL_S is a worker that died. Routing sends a model only to an
    engine some live worker advertises as available."""

    __tablename__ = "workers"

    # The worker's lease-owner name (`host:pid:random`), so its leased tasks can be told apart.
    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "database" | "remote"
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(32))
    # {engine: {"available": bool, "reason": str}} for every engine the worker runs or was asked to run.
    engines: Mapped[dict[str, Any]] = mapped_column(JSON)
    concurrency: Mapped[int] = mapped_column(Integer)
    running: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[float] = mapped_column(Double)
    last_seen_at: Mapped[float] = mapped_column(Double)
    # A remote worker's token (what may act under its leases, and what a revocation stops); None for a
    # database worker.
    token_id: Mapped[str | None] = mapped_column(String(32), nullable=True)

    __table_args__ = (Index("ix_workers_last_seen", "last_seen_at"), Index("ix_workers_token", "token_id"))


class WorkerToken(Base):
    """A remote worker's credential (`rgw_<id>_<secret>`): it may call the worker routes only, and claim only
    tasks of its engines. Stored as a hash of the secret, like API keys."""

    __tablename__ = "worker_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(64))
    # The engines its workers may claim; None = every engine.
    engines: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[float] = mapped_column(Double)
    revoked_at: Mapped[float | None] = mapped_column(Double, nullable=True)


class UpstreamHealth(Base):
    """A relay route's health shared by every process (engines/relay/health.py): its circuit breaker and the
    credential problem that degrades readiness. Keyed by provider and credential fingerprint."""

    __tablename__ = "upstream_health"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    opened_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    auth_problem: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[float] = mapped_column(Double)
