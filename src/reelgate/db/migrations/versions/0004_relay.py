"""relay state on tasks: upstream provider, task id, phase and submit time

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns only: SQLite adds them in place, and every existing task is simply not a relay task.
    op.add_column("tasks", sa.Column("upstream_provider", sa.String(16), nullable=True))
    op.add_column("tasks", sa.Column("upstream_task_id", sa.String(128), nullable=True))
    op.add_column("tasks", sa.Column("upstream_state", sa.String(16), nullable=True))
    op.add_column("tasks", sa.Column("upstream_submitted_at", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("upstream_submitted_at")
        batch.drop_column("upstream_state")
        batch.drop_column("upstream_task_id")
        batch.drop_column("upstream_provider")
