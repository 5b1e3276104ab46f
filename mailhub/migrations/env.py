"""Alembic environment for mailhub.

Run through :func:`mailhub.schema.upgrade`, which passes an open connection in
``config.attributes["connection"]``; no ``alembic.ini`` and no logging setup are
read, so this works from an installed package in any working directory.
"""
from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlmodel import SQLModel

import mailhub.models  # noqa: F401  (registers the tables on SQLModel.metadata)

# Any constant shared by every mailhub node: two nodes running `mailhub init` at
# the same time take turns instead of both creating the tables.
_PG_MIGRATION_LOCK = 0x6D61696C687562  # "mailhub"


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("mailhub migrations run through mailhub.schema.upgrade()")
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Taken before alembic reads the current revision; released at commit.
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
