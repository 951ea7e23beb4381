"""Alembic environment. `reelgate.db.migrate` hands in a live connection (the service's own async engine,
run synchronously), so migrations use exactly the driver and settings the service uses."""

from __future__ import annotations

from alembic import context

from reelgate.db.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
