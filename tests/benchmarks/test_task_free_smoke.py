"""The task-free benchmark (benchmarks/task_free.py): its smoke profile end to end, missing data, and AUROC.

The smoke run needs Debian's dataset-fashion-mnist and wordnet-base and the `pretrained` extra; without
them it is skipped, saying what is missing. The missing-data check points the loader at an empty folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from app.mas.task_free import DEFAULT_PREDICTOR, PREDICTORS
from tests.benchmarks.smoke import check_missing_data_refused, run_smoke
from tests.benchmarks.test_paper_smoke import needs_data, needs_pretrained


@pytest.mark.timeout(60)
def test_missing_data_says_how_to_install_and_exits_nonzero(tmp_path: Path) -> None:
    check_missing_data_refused("benchmarks.task_free", "task_free.json", tmp_path, timeout=170)


def test_auroc_is_the_mann_whitney_count() -> None:
    from benchmarks.task_free import auroc

    familiar, unknown = torch.tensor([0.9, 0.5, 0.5, 0.2]), torch.tensor([0.5, 0.1, 0.3])
    pairs = [1.0 if a > b else 0.5 if a == b else 0.0 for a in familiar.tolist() for b in unknown.tolist()]
    assert auroc(familiar, unknown) == pytest.approx(sum(pairs) / len(pairs))
    assert auroc(familiar, torch.zeros(0)) is None


@needs_data
@needs_pretrained
@pytest.mark.timeout(180)
def test_smoke_profile_scores_every_predictor_setting_and_step(tmp_path: Path) -> None:
    done = run_smoke("benchmarks.task_free", tmp_path, timeout=170)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "task_free.json").read_text())
    assert results["default_predictor"] == DEFAULT_PREDICTOR and results["settings"]["lambda"] == "auto"
    assert set(results["settings_runs"]) == {f"{b}/trainable {t}" for b in ("efficientnet", "minilm")
                                             for t in ("last2", "none")}
    for name, entry in results["settings_runs"].items():
        stale = "last2" in name
        run = entry["runs"][0]
        assert len(run["steps"]) == len(entry["tasks"]) == len(run["lambdas"])
        for step in run["steps"]:
            assert ("stale" in step) == stale and 0.0 <= step["oracle"] <= 1.0
            scored = step["remeasured"]
            assert set(scored["predictors"]) == set(PREDICTORS)
            assert all(set(s) == {"accuracy", "task_accuracy", "ece"} for s in scored["predictors"].values())
            assert 0.0 <= scored["far_auroc"] <= 1.0
        assert run["steps"][0]["remeasured"]["near_auroc"] is not None  # later tasks' classes are unknown
        summary = entry["summary"]
        assert set(summary["targets"]) == {"points_over_baselines", "of_joint", "far_auroc"}
        assert summary["winner"] in PREDICTORS and 0.0 <= summary["joint"]["mean"] <= 1.0
        assert ("stale" in summary["final"]) == stale
    minilm = results["settings_runs"]["minilm/trainable none"]["summary"]
    assert minilm["near_auroc_final"] is not None  # WordNet's categories in no task
    table = (tmp_path / "task_free.md").read_text()
    assert "### efficientnet/trainable last2" in table and "joint training (upper bound)" in table
    assert "far AUROC ≥ 0.95" in table
