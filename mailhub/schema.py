"""The database schema: alembic migrations run from code, no ``alembic.ini`` needed.

The migration scripts live in ``mailhub/migrations`` next to this module and are
found through ``__file__``, so an installed package migrates from any working
directory. SQLite and PostgreSQL both work; on PostgreSQL the migration holds an
advisory lock so several relay nodes can run ``mailhub init`` at once.
"""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from mailhub.db import make_engine
from mailhub.errors import ConfigError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """An alembic Config pointing at the packaged migrations (for ``upgrade`` and scripts)."""
    config = Config()
    # ConfigParser interpolation: a '%' in the install path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "mailhub/migrations has no revision"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine_or_url: Engine | str) -> bool:
    """Migrate the database to the newest revision. Idempotent.

    Returns True if anything was applied, False if the schema was already current.
    A URL gets a short-lived engine of its own (SQLite: the folder is created).
    """
    owned = isinstance(engine_or_url, str)
    engine = make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    try:
        if current_revision(engine) == head_revision():
            return False
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        return True
    finally:
        if owned:
            engine.dispose()


def require_current(engine: Engine) -> None:
    """Raise ConfigError, telling the operator to run ``mailhub init``, unless at head."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        where = engine.url.render_as_string(hide_password=True)
        state = "empty" if current is None else f"at revision {current}, expected {head}"
        raise ConfigError(f"database {where} is {state}: run `mailhub init`")
