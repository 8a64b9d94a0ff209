"""The engine and session factory, with SQLite set up for an API and a worker writing at once.

SQLite runs in WAL mode (readers never block the writer) with a busy timeout, and every
transaction starts with BEGIN IMMEDIATE: a deferred transaction that reads and then writes can
fail at once with "database is locked" when the other process wrote in between, whatever the
timeout, whereas an immediate one waits its turn. Our transactions are short, so the cost is nil.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from app.settings import Settings


def make_engine(settings: Settings, *, reader: bool = False) -> Engine:
    """The engine; `reader=True` gives one for read-only work (predictions, key checks): its SQLite
    transactions begin deferred, so under WAL they never wait for a worker's write lock."""
    url = settings.resolved_database_url
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    if url.startswith("sqlite:///") and ":memory:" not in url:
        settings.var_dir.mkdir(parents=True, exist_ok=True)
    busy_timeout = settings.sqlite_busy_timeout_ms
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout / 1000})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins (see the module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN" if reader else "BEGIN IMMEDIATE")

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: rows read in a finished transaction stay usable for shaping a response.
    return sessionmaker(engine, expire_on_commit=False)
