"""The scaling benchmark's code path, on a tiny workload and its two-worker configuration alone (the figures
are not checked, only the outputs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_scaling_benchmark_writes_json_and_table(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "benchmarks.scaling", "--jobs", "3", "--epochs", "2", "--repeats", "1",
               "--configs", "2x1",
               "--out", str(tmp_path)]
    subprocess.run(command, check=True, timeout=600, capture_output=True)
    results = json.loads((tmp_path / "scaling.json").read_text())
    assert [(row["workers"], row["torch_threads"]) for row in results["rows"]] == [(2, 1)]
    for row in results["rows"]:
        assert row["jobs_per_minute"] > 0 and sum(row["jobs_per_worker"].values()) == 3
        assert row["database_per_job"]["commits"] > 0
    assert "| 2 × 1 |" in (tmp_path / "scaling.md").read_text()
