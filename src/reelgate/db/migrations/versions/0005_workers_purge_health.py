"""workers registry, purged flag of tasks, shared upstream health

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("purged", sa.Boolean(), nullable=False, server_default=sa.false()))
    # Tasks whose results an earlier sweep already deleted (result_key forgotten) count as purged.
    op.execute(sa.text("UPDATE tasks SET purged = true WHERE finished_at IS NOT NULL AND result_key IS NULL"))
    op.create_index("ix_tasks_purge", "tasks", ["purged", "finished_at"])
    op.create_table(
        "workers",
        sa.Column("id", sa.String(160), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("engines", sa.JSON(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("last_seen_at", sa.Double(), nullable=False),
    )
    op.create_index("ix_workers_last_seen", "workers", ["last_seen_at"])
    op.create_table(
        "upstream_health",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.Double(), nullable=True),
        sa.Column("auth_problem", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.Double(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("upstream_health")
    op.drop_table("workers")
    op.drop_index("ix_tasks_purge", "tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("purged")
