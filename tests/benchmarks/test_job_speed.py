"""benchmarks/job_speed.py's quick profile: both kinds learned with and without the frozen-prefix cache,
the results written, and the cached run the uncached one (the figures are the full profile's)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import job_speed


def test_quick_profile_writes_both_kinds_and_the_same_run(tmp_path: Path) -> None:
    job_speed.main(["--quick", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "job_speed.json").read_text())
    assert results["profile"] == "quick" and set(results["kinds"]) == {"text", "image"}
    for entry in results["kinds"].values():
        assert entry["trials_second_task"] == 2 and entry["ratio_second_task"] > 0
        difference = entry["difference"]
        assert difference["same_lambda"] == 1.0
        assert difference["theta_max_abs"] < 1e-4 and difference["loss_max_abs"] < 1e-5
        assert difference["omega_max_rel"] < 1e-4
    assert "cached / uncached" in (tmp_path / "job_speed.md").read_text()
