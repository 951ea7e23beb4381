"""accounts, key limits, the credit ledger and idempotency keys

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import secrets
import time

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("user_group", sa.String(64), nullable=False),
        sa.Column("balance_millicredits", sa.BigInteger(), nullable=False),
        sa.Column("held_millicredits", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
    )
    op.create_table(
        "credit_entries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_millicredits", sa.BigInteger(), nullable=False),
        sa.Column("task_id", sa.String(64), nullable=True),
        sa.Column("dedupe_key", sa.String(96), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.UniqueConstraint("dedupe_key", name="uq_credit_entries_dedupe_key"),
    )
    op.create_index("ix_credit_entries_account", "credit_entries", ["account_id", "id"])
    op.create_index("ix_credit_entries_task", "credit_entries", ["task_id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("api_key_id", sa.String(32), sa.ForeignKey("api_keys.id"), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("task_id", sa.String(64), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
    )
    op.create_index("ix_idempotency_keys_expires", "idempotency_keys", ["expires_at"])
    # Added as plain nullable columns: SQLite cannot add a NOT NULL column with a reference, and rebuilding
    # api_keys would have to drop a table that tasks and webhook_secrets point at.
    op.execute("ALTER TABLE api_keys ADD COLUMN account_id VARCHAR(32) REFERENCES accounts (id)")
    op.add_column("api_keys", sa.Column("allowed_models", sa.JSON(), nullable=True))
    op.add_column("api_keys", sa.Column("rpm_limit", sa.Integer(), nullable=True))
    op.add_column("api_keys", sa.Column("max_concurrent", sa.Integer(), nullable=True))
    op.add_column("api_keys", sa.Column("expires_at", sa.Double(), nullable=True))
    op.create_index("ix_api_keys_account", "api_keys", ["account_id"])
    _give_each_key_an_account()
    op.drop_column("api_keys", "balance_millicredits")
    op.drop_column("api_keys", "user_group")


def _give_each_key_an_account() -> None:
    # Written out rather than imported: a migration must keep doing what it did when it was written.
    # One account per existing key; its balance becomes a grant, and unsettled holds become reserves, so
    # the ledger explains every credit from the first day.
    connection = op.get_bind()
    now = time.time()
    keys = connection.execute(sa.text("SELECT id, name, balance_millicredits, user_group FROM api_keys")).all()
    for key_id, name, balance, group in keys:
        account_id = secrets.token_hex(6)
        held = connection.execute(
            sa.text(
                "SELECT id, credits_reserved_millicredits FROM tasks WHERE api_key_id = :key AND credits_state = 'held'"
            ),
            {"key": key_id},
        ).all()
        held_total = sum(amount for _, amount in held)
        # The old balance had the holds taken out already; the account's balance counts them in.
        connection.execute(
            sa.text(
                "INSERT INTO accounts (id, name, user_group, balance_millicredits, held_millicredits, created_at) "
                "VALUES (:id, :name, :group, :balance, :held, :now)"
            ),
            {
                "id": account_id,
                "name": name,
                "group": group,
                "balance": balance + held_total,
                "held": held_total,
                "now": now,
            },
        )
        entries: list[tuple[str, int, str | None, str | None]] = [("grant", balance + held_total, None, None)]
        entries += [("reserve", amount, task_id, f"reserve:{task_id}") for task_id, amount in held]
        for kind, amount, task_id, dedupe_key in entries:
            connection.execute(
                sa.text(
                    "INSERT INTO credit_entries (account_id, kind, amount_millicredits, task_id, dedupe_key, note, "
                    "created_at) VALUES (:account, :kind, :amount, :task, :dedupe, :note, :now)"
                ),
                {
                    "account": account_id,
                    "kind": kind,
                    "amount": amount,
                    "task": task_id,
                    "dedupe": dedupe_key,
                    "note": "migrated from the key's balance" if kind == "grant" else "migrated hold",
                    "now": now,
                },
            )
        connection.execute(
            sa.text("UPDATE api_keys SET account_id = :account WHERE id = :key"), {"account": account_id, "key": key_id}
        )


def downgrade() -> None:
    op.add_column("api_keys", sa.Column("balance_millicredits", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column("api_keys", sa.Column("user_group", sa.String(64), nullable=False, server_default="default"))
    op.drop_index("ix_api_keys_account", "api_keys")
    for column in ("expires_at", "max_concurrent", "rpm_limit", "allowed_models", "account_id"):
        op.drop_column("api_keys", column)
    op.drop_table("idempotency_keys")
    op.drop_table("credit_entries")
    op.drop_table("accounts")
