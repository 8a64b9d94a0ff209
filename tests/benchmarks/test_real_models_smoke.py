"""benchmarks.real_models at its smoke profile: every case it reports (MiniLM and EfficientNet-Lite0, all blocks
and the last 2) on tiny random stand-ins built from the same trunk code, both sections, and its report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import real_models

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_real_models_smoke_runs_every_case_and_writes_its_report(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "benchmarks.real_models", "--profile", "smoke", "--out", str(tmp_path)],
                   check=True, timeout=110, cwd=REPO, capture_output=True)
    results = json.loads((tmp_path / "real_models.json").read_text())
    assert results["profile"] == "smoke" and set(results["cases"]) == set(real_models.CASES)
    for name, case in results["cases"].items():
        importance = case["importance"]
        assert "error" not in importance, (name, importance)
        assert importance["ratios"]["exact_vs_batch"] > 0
        assert importance["vmap_over_grad"]["relative_l1_difference_to_exact"] < 1e-4
        assert all("samples_per_s" in importance[k] or "error" in importance[k] for k in ("opacus", "backpack"))
        step = case["training_step"]  # the EfficientNet cases once failed here (per-task batch-norm statistics)
        assert step["mas_vs_finetune"] > 0 and step["anchored_parameters"] > 0
    last2, every = (results["cases"][f"efficientnet_lite0_96_{t}"]["parameters_measured"] for t in ("last2", "all"))
    assert 0 < last2 < every
    assert results["provenance"]["command"].startswith("python -m benchmarks.real_models --profile smoke")
    report = (tmp_path / "real_models.md").read_text()
    assert report.splitlines()[2].startswith("Provenance: commit")
    assert "Against the targets" in report and "| efficientnet_lite0_96_last2 |" in report


def test_the_training_step_leaves_the_network_as_it_found_it() -> None:
    """θ, heads and batch-norm copies of the measured network are untouched by the timed training runs."""
    import torch

    from app.mas.networks import network_state

    net = real_models.case_network(real_models.CASES["efficientnet_lite0_96_all"], "smoke")
    before = network_state(net)
    real_models.training_step(net, steps=1, repeats=1)
    after = network_state(net)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
