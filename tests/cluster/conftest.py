"""The cluster tests need PostgreSQL and redis-server from the machine's packages (.ci/run installs
both); where either is missing they are skipped with the reason, like the other tests of real servers."""

from __future__ import annotations

import shutil

import pytest

from scripts.cluster import postgres_bin


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
