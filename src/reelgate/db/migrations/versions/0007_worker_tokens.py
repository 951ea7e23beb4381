"""worker tokens for remote workers, and the token of each registered worker

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("engines", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("revoked_at", sa.Double(), nullable=True),
    )
    op.add_column("workers", sa.Column("token_id", sa.String(32), nullable=True))
    op.create_index("ix_workers_token", "workers", ["token_id"])


def downgrade() -> None:
    op.drop_index("ix_workers_token", "workers")
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("token_id")
    op.drop_table("worker_tokens")
