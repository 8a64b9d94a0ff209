"""benchmarks.gpu_speed at its quick profile on the CPU: every section and case runs and is reported.

The figures of a quick run mean nothing (tiny random stand-ins, a few rows, a busy CI machine); what is
checked is that each section measures what it says, so that a GPU run does not find a broken case.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import gpu_speed


@pytest.mark.parametrize("sections", ["omega,train,predict", "http"])
def test_every_section_and_case_runs_and_is_written(tmp_path: Path, sections: str) -> None:
    """The sections in two runs (`--sections`), each a test of its own: together, every section and case."""
    assert gpu_speed.main(["--device", "cpu", "--quick", "--sections", sections, "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "gpu_speed_cpu_quick.json").read_text())
    markdown = (tmp_path / "gpu_speed_cpu_quick.md").read_text()
    if sections == "http":
        for sharing in ("on", "off"):
            assert results["http"][sharing]["32_clients_1_row"]["requests"] == 8 * gpu_speed.PROFILES["quick"][
                "http_requests"]
        assert "HTTP 32 one-row clients" in markdown
        return
    assert set(results["omega"]) == set(gpu_speed.SPECS)
    for case, entry in results["omega"].items():
        assert entry["exact_vs_batch"] > 0 and entry["exact"]["samples_per_s"] > 0, case
    assert {"exact_depthwise_grouped", "exact_depthwise_shifted"} <= set(results["omega"]["efficientnet_all"])
    for entry in results["train"].values():
        assert entry["finetune_vs_plain"] > 0 and entry["mas_vs_finetune"] > 0
    assert results["predict"]["texts"]["ours_texts_per_s"] > 0
    assert "not run" in results["predict"]["texts"]["sentence_transformers"]
    assert "Ω exact / batch, minilm_all" in markdown
