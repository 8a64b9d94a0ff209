"""What the smoke tests of the newer benchmarks share: run a benchmark's smoke profile as a user would, and
check that without its Debian data it says how to install it and writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchmarks.paper.data import FASHION_ENV
from tests.benchmarks.test_paper_smoke import REPO


def run_smoke(module: str, out: Path, *, timeout: float, env: dict[str, str] | None = None,
              extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", module, "--profile", "smoke", "--out", str(out), *extra]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def check_missing_data_refused(module: str, results: str, tmp_path: Path, *, timeout: float) -> None:
    """Exit 2 naming the packages to install, no traceback, and no results file."""
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run_smoke(module, tmp_path / "out", timeout=timeout, env={FASHION_ENV: str(empty)})
    assert done.returncode == 2, done.stderr
    assert "apt-get install dataset-fashion-mnist wordnet-base" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / results).exists()
