"""Alembic environment: the URL comes from the service's settings, the target from its ORM tables."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from app.db.engine import make_engine
from app.db.tables import Base
from app.settings import Settings

config = context.config
MIGRATION_LOCK_KEY = 0x6C69_6665_6C6F_6E67 >> 1  # "lifelong", as a positive bigint


def _settings() -> Settings:
    settings = config.attributes.get("settings")
    if settings is None:  # the alembic CLI: take the URL from alembic.ini or the environment
        url = config.get_main_option("sqlalchemy.url")
        settings = Settings(database_url=url) if url else Settings()
    return settings


def run_migrations_offline() -> None:
    context.configure(url=_settings().resolved_database_url, target_metadata=Base.metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # The service's own engine, so SQLite gets WAL and BEGIN IMMEDIATE: two processes starting at
    # once then migrate one after the other instead of both creating the tables.
    engine = make_engine(_settings())
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # Batch mode rebuilds a SQLite table as a copy: with foreign keys on, dropping the old table
            # cascades to the rows that point at it (0007's rebuild of `versions` took every `tasks` row).
            # The pragma only takes effect outside a transaction, so on the driver's connection, first.
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        # SQLite does run DDL in a transaction (the engine begins them itself), which makes a migration
        # all-or-nothing and, with BEGIN IMMEDIATE, one process's at a time.
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                          transactional_ddl=True)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Workers on several hosts start at once after a deploy: the first takes this lock
                # and migrates; the others wait for its commit, then find nothing left to do.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
