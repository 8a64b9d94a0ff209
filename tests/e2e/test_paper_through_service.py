"""The paper benchmark through a real API and worker, from raw files (benchmarks/paper's service runs).

An end-to-end test (it starts a service and trains MiniLM and EfficientNet-Lite0 through it), so it lives here
rather than beside the benchmark's other smoke tests in tests/benchmarks/test_paper_smoke.py, whose helpers it
uses. It needs what they need: Debian's data packages and the `pretrained` extra (skipped without, saying so).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.benchmarks.test_paper_smoke import _run, needs_data, needs_pretrained


@needs_data
@needs_pretrained
@pytest.mark.timeout(600)
@pytest.mark.parametrize("backbone", ["minilm", "efficientnet"])  # the profile's service_backbones
def test_the_service_learns_what_the_in_process_run_learns(tmp_path: Path, backbone: str) -> None:
    """mixed_8 alone (`--sequences 1`; the 5-task sequence of Table 3 comes with it), in process and through a real
    API and worker from raw files: the two accuracy matrices agree within one eval sample per entry."""
    done = _run(tmp_path, "--backbones", backbone, "--sequences", "1")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "paper.json").read_text())
    assert list(results["backbones"][backbone]["sequences"]) == ["mixed_8", "five"]
    assert set(results["service"]) == {backbone}
    comparison = results["service"][backbone]["comparison"]
    assert comparison["entries"] == 3 and comparison["max_difference_in_samples"] <= 1
    assert "Through the service" in (tmp_path / "paper.md").read_text()
