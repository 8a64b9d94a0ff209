"""benchmarks/shadow_latency.py runs end to end on a few requests and writes every figure it reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_the_shadow_latency_benchmark_writes_its_figures(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "benchmarks.shadow_latency", "--requests", "16", "--out", str(tmp_path)],
                   check=True, timeout=280, cwd=Path(__file__).resolve().parents[2], capture_output=True)
    results = json.loads((tmp_path / "shadow_latency.json").read_text())
    assert {"without", "with_shadow"} == set(results["latency"]) and results["p50_ratio"] > 0
    assert results["target"]["nothing_lost"] and results["shadow"]["compared"] + results["shadow"]["dropped"] == 36
    assert "p50 with / without" in (tmp_path / "shadow_latency.md").read_text()
