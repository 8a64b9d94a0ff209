"""The cluster tests need PostgreSQL and redis-server from the machine's packages (.ci/run installs
both); where either is missing they are skipped with the reason, like the other tests of real servers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.db.engine import make_engine, make_session_factory
from app.db.migrate import upgrade_database
from app.settings import Settings
from scripts.cluster import Server, postgres_bin, start_postgres


def _missing() -> str | None:
    try:
        postgres_bin("initdb")
    except FileNotFoundError as error:
        return str(error)
    if shutil.which("redis-server") is None:
        return "redis-server is not on PATH (Debian: apt-get install redis-server)"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _missing()
    if reason is None:
        return
    for item in items:
        if "tests/cluster/" in str(item.path):
            item.add_marker(pytest.mark.skip(reason=reason))


# A PostgreSQL of the module's own, migrated to the head, for the tests that talk to it directly.
@pytest.fixture(scope="module")
def postgres() -> Iterator[Server]:
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sessions(postgres: Server) -> Iterator[sessionmaker[Session]]:
    settings = Settings(database_url=postgres.url)
    upgrade_database(settings)
    engine = make_engine(settings)
    yield make_session_factory(engine)
    engine.dispose()
