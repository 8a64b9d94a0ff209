"""Fixtures for the security tests: one service of their own (keys would close the shared one) and keys
made with the real `lifelong keys` command against its database while it runs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, Service, service_env, start_service


def run_cli(var_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=REPO, env=service_env(var_dir, **(env or {})),
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running = start_service(tmp_path_factory.mktemp("secured") / "var")
    yield running
    running.close()


@pytest.fixture(scope="module")
def make_key(secured: Service) -> Callable[..., str]:
    """A new key of the given scope, created with `lifelong keys create` (`extra`: more of its options, such as
    `--models a,b`); returns the token."""

    def make(scope: str, name: str | None = None, *extra: str) -> str:
        done = run_cli(secured.var_dir, "keys", "create", "--scope", scope, *(["--name", name] if name else []),
                       *extra)
        assert done.returncode == 0, done.stderr
        token = done.stdout.strip()
        assert token.startswith("ll_"), done.stdout
        return token

    return make
