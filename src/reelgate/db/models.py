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
