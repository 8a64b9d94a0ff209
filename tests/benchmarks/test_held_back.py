"""benchmarks.held_back: the share a floor holds back, worked out by hand, and its quick profile end to end."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from app.mas.data import TaskData
from benchmarks import held_back


def _task(rows: int) -> TaskData:
    return TaskData(f"t{rows}", torch.zeros(rows, 2), torch.zeros(rows, dtype=torch.long), torch.zeros(1, 2),
                    torch.zeros(1, dtype=torch.long))


def test_the_floor_is_met_by_the_smallest_task_within_half_of_its_rows() -> None:
    tasks = [_task(400), _task(120)]
    assert held_back.held_back_fraction(tasks, 0.1, 0) == 0.1  # no floor: the service's fraction
    assert held_back.held_back_fraction(tasks, 0.1, 10) == 0.1  # 12 of 120 already meet 10
    assert held_back.held_back_fraction(tasks, 0.1, 30) == 0.25  # 30 of 120 (and 100 of 400)
    assert held_back.held_back_fraction(tasks, 0.1, 100) == 0.5  # at most half


def test_floors_are_whole_non_negative_rows() -> None:
    assert held_back._floors("50, 0,50") == [0, 50]
    for bad in ("", "-1", "ten"):
        with pytest.raises(argparse.ArgumentTypeError):
            held_back._floors(bad)


def test_quick_profile_runs_every_floor_reports_the_cost_of_holding_back_and_merges(tmp_path: Path) -> None:
    held_back.main(["--profile", "quick", "--networks", "mlp", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "held_back.json").read_text())
    assert list(results["by_floor"]) == ["0", "10"]
    fractions = [results["by_floor"][f]["mlp"]["sequences"][0]["fraction"] for f in ("0", "10")]
    assert fractions[0] == 0.1 and fractions[1] > 0.1
    floored = results["by_floor"]["10"]["mlp"]["summary"]
    assert floored["new_task_rows_median"] >= 10 and 0 <= floored["finetune_new_task_accuracy"] <= 1
    assert set(floored["rules"]) >= set(held_back.SHOWN_RULES)
    text = (tmp_path / "held_back.md").read_text()
    assert "| 10 | mlp |" in text and "Provenance:" in text
    held_back.main(["--profile", "quick", "--networks", "cnn", "--out", str(tmp_path / "cnn")])
    held_back.main(["--merge", str(tmp_path), str(tmp_path / "cnn"), "--out", str(tmp_path / "both")])
    merged = json.loads((tmp_path / "both" / "held_back.json").read_text())
    assert set(merged["by_floor"]["10"]) == {"mlp", "cnn"}
    with pytest.raises(SystemExit, match="two runs measured mlp"):
        held_back.main(["--merge", str(tmp_path), str(tmp_path), "--out", str(tmp_path / "twice")])
