"""Alembic environment. Run through :mod:`modelgate.inventory.migrate` (configuration is
built in code, so migrations work from an installed package without an alembic.ini)."""

from __future__ import annotations

from alembic import context

from modelgate.inventory.migrate import all_metadata, configure_context

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through modelgate.inventory.migrate (`modelgate db ...`)")

configure_context(context, connection, all_metadata())
with context.begin_transaction():
    context.run_migrations()
