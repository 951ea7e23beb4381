"""uploaded files, task posters, per-key read limits

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns: SQLite adds them in place; an existing key inherits its group's read limit, and an
    # existing completed task simply has no poster.
    op.add_column("api_keys", sa.Column("read_rpm_limit", sa.Integer(), nullable=True))
    op.add_column("tasks", sa.Column("poster_key", sa.String(256), nullable=True))
    op.create_table(
        "files",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("api_key_id", sa.String(32), sa.ForeignKey("api_keys.id"), nullable=False),
        sa.Column("storage_key", sa.String(256), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("original_name", sa.String(255), nullable=False),
        sa.Column("upload_path", sa.String(255), nullable=False),
        sa.Column("mime_type", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("deleted_at", sa.Double(), nullable=True),
        sa.Column("purged", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_files_account_created", "files", ["account_id", "created_at"])
    op.create_index("ix_files_purge", "files", ["purged", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_files_purge", "files")
    op.drop_index("ix_files_account_created", "files")
    op.drop_table("files")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("poster_key")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("read_rpm_limit")
