"""The drift benchmark (benchmarks/drift.py): its smoke profile end to end, missing data, and its own parts.

The smoke run needs Debian's dataset-fashion-mnist and wordnet-base and the `pretrained` extra; without them
it is skipped, saying what is missing. The independent MMD is checked against a slow loop over pairs, the
shifts against what they must do, and the interval against its closed form.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.benchmarks.smoke import check_missing_data_refused, run_smoke
from tests.benchmarks.test_paper_smoke import needs_data, needs_pretrained


@pytest.mark.timeout(60)
def test_missing_data_says_how_to_install_and_exits_nonzero(tmp_path: Path) -> None:
    check_missing_data_refused("benchmarks.drift", "drift.json", tmp_path, timeout=55)


def _mmd2_by_pairs(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.exp(-((a - b) ** 2).sum() / (2 * sigma**2)))

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(a, b) for a in x for b in y) / (m * n)
    return xx + yy - 2 * xy


def test_the_independent_mmd_is_the_statistic_of_a_loop_and_the_services() -> None:
    from app.mas.drift import mmd_test
    from benchmarks.drift import numpy_mmd_test

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(9, 3)), rng.normal(0.8, 1.0, size=(7, 3))
    pooled = np.concatenate([x, y])
    distances = [np.linalg.norm(a - b) for i, a in enumerate(pooled) for b in pooled[i + 1 :]]
    statistic, p, sigma = numpy_mmd_test(x, y, permutations=400, seed=1)
    assert sigma == pytest.approx(float(np.median(distances)), rel=1e-9)
    assert statistic == pytest.approx(_mmd2_by_pairs(x, y, sigma), rel=1e-9)
    service = mmd_test(torch.from_numpy(x), torch.from_numpy(y), permutations=400)
    assert statistic == pytest.approx(service.statistic, rel=1e-9) and sigma == pytest.approx(service.bandwidth)
    assert abs(p - service.p_value) < 0.1 and 1 / 401 <= p <= 1


def test_shifts_rotate_blur_and_misspell() -> None:
    from benchmarks.drift import blurred, rotated, with_typos

    images = torch.rand(3, 1, 28, 28) * 255
    quarter = rotated(images, 90.0)
    assert any(torch.allclose(quarter, torch.rot90(images, k, dims=(2, 3)), atol=1e-3) for k in (1, -1))
    assert torch.allclose(rotated(images, 0.0), images, atol=1e-3)
    dot = torch.zeros(1, 1, 28, 28)
    dot[0, 0, 14, 14] = 100.0
    spread = blurred(dot, 1.5)
    assert float(spread.sum()) == pytest.approx(100.0, rel=1e-4) and float(spread.max()) < 10.0
    text = "a small domesticated carnivore kept as a pet"
    rng = np.random.default_rng(0)
    assert with_typos(text, 0.0, rng) == text
    misspelt = with_typos(text, 0.2, rng)
    assert misspelt != text and len(misspelt) <= len(text) and set(misspelt) <= set(text)


def test_clopper_pearson_has_its_closed_form_at_zero_and_all() -> None:
    from benchmarks.drift import clopper_pearson

    assert clopper_pearson(0, 200) == pytest.approx((0.0, 1 - 0.025 ** (1 / 200)))
    assert clopper_pearson(50, 50) == pytest.approx((0.025 ** (1 / 50), 1.0))
    lower, upper = clopper_pearson(2, 200)
    assert lower < 0.01 < upper


def _smoke_part(out: Path, part: str) -> dict:
    """One part a run of its own (`--parts`), so that no one test runs the whole benchmark."""
    done = run_smoke("benchmarks.drift", out, timeout=290, extra=("--parts", part))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "drift.json").read_text())


@needs_data
@needs_pretrained
@pytest.mark.timeout(300)
def test_smoke_profile_reports_every_study_and_the_agreement(tmp_path: Path) -> None:
    results = _smoke_part(tmp_path, "drift")
    assert results["alpha"] == 0.01 and results["targets"]["detection_size"] == 200
    sizes = [str(s) for s in results["settings"]["sizes"]]
    shifts = {"efficientnet": {"rotated", "blurred"}, "minilm": {"verbs", "adjectives", "typos"}}
    assert set(results["drift"]) == set(shifts)
    for backbone, entry in results["drift"].items():
        assert set(entry["studies"]) == {"null", "null_redrawn"} | shifts[backbone]
        for name, study in entry["studies"].items():
            assert list(study) == sizes
            for result in study.values():
                lower, upper = result["interval"]
                assert 0.0 <= lower <= result["rate"] <= upper <= 1.0
                assert len(result["p_values"]) == result["batches"]
                assert all(1 / (1 + result["permutations"]) <= p <= 1 for p in result["p_values"])
                assert ("holds" in result) == name.startswith("null")  # no batch of 200 in the smoke profile
        assert set(entry["agreement"]) == {"null", "shifted"}
        for agreement in entry["agreement"].values():
            assert agreement["pairs"] > 0 and agreement["max_statistic_relative_difference"] < 1e-6
            assert 0.0 <= agreement["same_decision"] <= 1.0
    table = (tmp_path / "drift.md").read_text()
    for heading in ("## Drift: false alarms and detection", "## Agreement with an independent implementation",
                    "### minilm: task wn-animal-plant"):
        assert heading in table
    assert "## Negative flips" not in table


@needs_data
@needs_pretrained
@pytest.mark.timeout(300)
def test_smoke_profile_reports_the_flips_of_every_network(tmp_path: Path) -> None:
    results = _smoke_part(tmp_path, "flips")
    assert set(results["flips"]["backbones"]) == {"cnn", "efficientnet", "minilm"}  # every network it reports
    for flips in results["flips"]["backbones"].values():
        assert set(flips["methods"]) == {"finetune", "lwf", "ewc", "si", "mas"}
    flips = results["flips"]["backbones"]["cnn"]
    for method in flips["methods"].values():
        run, summary = method["runs"][0], method["summary"]
        assert len(run["steps"]) == len(flips["tasks"]) and run["steps"][0]["negative"] == {}
        assert len(run["steps"][-1]["negative"]) == len(flips["tasks"]) - 1
        assert 0.0 <= summary["negative"]["mean"] <= summary["worst"] <= 1.0
        assert set(summary["blocked"]) == {"0.02", "0.05", "0.1", "0.2"}
    table = (tmp_path / "drift.md").read_text()
    assert "## Negative flips on the paper benchmark's sequences" in table and "## Drift: false alarms" not in table
